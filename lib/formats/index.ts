/**
 * lib/formats: one module per on-disk format, each owning its type, its reader (errors name the
 * file and the field, duplicate JSON keys refused, large files streamed) and its atomic writer.
 * Features (.npy) live in lib/data/npy.ts and checkpoints in lib/io/ (binary containers).
 */
export * from './ground_truth';
export * from './point_labels';
export * from './splits';
export * from './results';
export * from './proposals';
export * from './metrics';
export * from './run_config';
export { FormatError } from './text';
