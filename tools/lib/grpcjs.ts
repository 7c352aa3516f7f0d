// The reference gRPC client/server (@grpc/grpc-js) for tests and the bench, imported in exactly one place.
export * from '@grpc/grpc-js';
