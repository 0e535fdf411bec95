export * from './timeline';
export * from './video';
export * from './metrics';
