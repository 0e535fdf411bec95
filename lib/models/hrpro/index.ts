export * from './stage1';
export * from './rab';
export * from './pseudo_labels';
export * from './losses';
