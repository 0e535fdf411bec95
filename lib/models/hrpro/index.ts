export * from './stage1';
export * from './rab';
export * from './pseudo_labels';
export * from './losses';
export * from './inference';
export * from './ranking';
export * from './train_stage1';
export * from './pipeline';
