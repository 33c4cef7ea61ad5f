export * from './archived-postgres';
export * from './archive-storage';
export * from './termination-policy';
