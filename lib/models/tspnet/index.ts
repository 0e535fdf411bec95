/**
 * TSPNet (CVPR 2024), the point-supervised plug-in on a base locator's proposals (SPEC §5):
 * `tspnet.train(...)` and `tspnet.loadTspNet(RUN)` + `tspnet.detect(...)`.
 */
export * from './config';
export * from './model';
export * from './labels';
export * from './losses';
export * from './proposals';
export * from './inference';
export * from './checkpoint';
export * from './evaluate';
export * from './train';
export * from './run';
export * from './pipeline';
