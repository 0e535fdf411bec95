export * from './timeline';
export * from './video';
