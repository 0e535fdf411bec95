export * from './module';
export * from './layers';
export * from './optim';
export * from './init';
