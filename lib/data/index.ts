/** lib/data: dataset files on disk (SPEC §1): .npy features, configs, the dataset loader. */
export * from './npy';
export * from './config';
export * from './dataset';
export * from './synth';
export * from './check';
export * from './points';
