/** Evaluation: detection mAP (SPEC section 6) and the THUMOS14 ambiguous-segment filter. */
export * from './detection';
export * from './ambiguous';
