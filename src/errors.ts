// Every error a client can see, with etcd's gRPC code and its exact message (clientv3 compares
// messages byte for byte). Thrown anywhere below the API; mapped to the wire in exactly one place
// (the gRPC server writes `grpc-status`/`grpc-message`, the JSON gateway the HTTP status).

/** gRPC status codes (google.golang.org/grpc/codes). */
export const GrpcCode = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

/**
 * An error with a gRPC status. `message` is what goes on the wire.
 *
 *   throw new EtcdError(GrpcCode.InvalidArgument, 'etcdserver: key is not provided');
 *   throw Errors.EmptyKey();
 */
export class EtcdError extends Error {
  constructor(
    readonly code: GrpcCode,
    message: string,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

function make(code: GrpcCode, message: string): () => EtcdError {
  return () => new EtcdError(code, message);
}

const C = GrpcCode;

/** etcd's errors (etcdserver/api/v3rpc/rpctypes/error.go), one factory each. */
export const Errors = {
  EmptyKey: make(C.InvalidArgument, 'etcdserver: key is not provided'),
  KeyNotFound: make(C.InvalidArgument, 'etcdserver: key not found'),
  ValueProvided: make(C.InvalidArgument, 'etcdserver: value is provided'),
  LeaseProvided: make(C.InvalidArgument, 'etcdserver: lease is provided'),
  TooManyOps: make(C.InvalidArgument, 'etcdserver: too many operations in txn request'),
  DuplicateKey: make(C.InvalidArgument, 'etcdserver: duplicate key given in txn request'),
  Compacted: make(C.OutOfRange, 'etcdserver: mvcc: required revision has been compacted'),
  FutureRev: make(C.OutOfRange, 'etcdserver: mvcc: required revision is a future revision'),
  NoSpace: make(C.ResourceExhausted, 'etcdserver: mvcc: database space exceeded'),

  LeaseNotFound: make(C.NotFound, 'etcdserver: requested lease not found'),
  LeaseExist: make(C.FailedPrecondition, 'etcdserver: lease already exists'),
  LeaseTTLTooLarge: make(C.OutOfRange, 'etcdserver: too large lease TTL'),

  WatchCanceled: make(C.Canceled, 'etcdserver: watch canceled'),

  MemberExist: make(C.FailedPrecondition, 'etcdserver: member ID already exist'),
  PeerURLExist: make(C.FailedPrecondition, 'etcdserver: Peer URLs already exists'),
  MemberNotEnoughStarted: make(C.FailedPrecondition, 'etcdserver: re-configuration failed due to not enough started members'),
  MemberBadURLs: make(C.InvalidArgument, 'etcdserver: given member URLs are invalid'),
  MemberNotFound: make(C.NotFound, 'etcdserver: member not found'),
  MemberNotLearner: make(C.FailedPrecondition, 'etcdserver: can only promote a learner member'),
  LearnerNotReady: make(C.FailedPrecondition, 'etcdserver: can only promote a learner member which is in sync with leader'),
  TooManyLearners: make(C.FailedPrecondition, 'etcdserver: too many learner members in cluster'),

  RequestTooLarge: make(C.InvalidArgument, 'etcdserver: request is too large'),
  TooManyRequests: make(C.ResourceExhausted, 'etcdserver: too many requests'),

  RootUserNotExist: make(C.FailedPrecondition, 'etcdserver: root user does not exist'),
  RootRoleNotExist: make(C.FailedPrecondition, 'etcdserver: root user does not have root role'),
  UserAlreadyExist: make(C.FailedPrecondition, 'etcdserver: user name already exists'),
  UserEmpty: make(C.InvalidArgument, 'etcdserver: user name is empty'),
  UserNotFound: make(C.FailedPrecondition, 'etcdserver: user name not found'),
  RoleAlreadyExist: make(C.FailedPrecondition, 'etcdserver: role name already exists'),
  RoleNotFound: make(C.FailedPrecondition, 'etcdserver: role name not found'),
  RoleEmpty: make(C.InvalidArgument, 'etcdserver: role name is empty'),
  AuthFailed: make(C.InvalidArgument, 'etcdserver: authentication failed, invalid user ID or password'),
  PermissionDenied: make(C.PermissionDenied, 'etcdserver: permission denied'),
  RoleNotGranted: make(C.FailedPrecondition, 'etcdserver: role is not granted to the user'),
  PermissionNotGranted: make(C.FailedPrecondition, 'etcdserver: permission is not granted to the role'),
  AuthNotEnabled: make(C.FailedPrecondition, 'etcdserver: authentication is not enabled'),
  InvalidAuthToken: make(C.Unauthenticated, 'etcdserver: invalid auth token'),
  InvalidAuthMgmt: make(C.InvalidArgument, 'etcdserver: invalid auth management'),
  AuthOldRevision: make(C.InvalidArgument, 'etcdserver: revision of auth store is old'),

  NoLeader: make(C.Unavailable, 'etcdserver: no leader'),
  NotLeader: make(C.FailedPrecondition, 'etcdserver: not leader'),
  LeaderChanged: make(C.Unavailable, 'etcdserver: leader changed'),
  NotCapable: make(C.Unavailable, 'etcdserver: not capable'),
  Stopped: make(C.Unavailable, 'etcdserver: server stopped'),
  Timeout: make(C.Unavailable, 'etcdserver: request timed out'),
  TimeoutDueToLeaderFail: make(C.Unavailable, 'etcdserver: request timed out, possibly due to previous leader failure'),
  TimeoutDueToConnectionLost: make(C.Unavailable, 'etcdserver: request timed out, possibly due to connection lost'),
  TimeoutLeaderTransfer: make(C.Unavailable, 'etcdserver: request timed out, leader transfer took too long'),
  TimeoutWaitAppliedIndex: make(C.Unavailable, 'etcdserver: request timed out, waiting for the applied index took too long'),
  Unhealthy: make(C.Unavailable, 'etcdserver: unhealthy cluster'),
  Corrupt: make(C.DataLoss, 'etcdserver: corrupt cluster'),
  NotSupportedForLearner: make(C.Unavailable, 'etcdserver: rpc not supported for learner'),
  BadLeaderTransferee: make(C.FailedPrecondition, 'etcdserver: bad leader transferee'),

  /** A request the server could not parse (malformed protobuf or JSON). */
  BadRequest: (detail: string) => new EtcdError(C.InvalidArgument, detail),
  /** Anything else goes out as Unknown with its own text, as etcd does. */
  Unknown: (detail: string) => new EtcdError(C.Unknown, detail),
} as const;

/** The gRPC view of any thrown value: EtcdErrors keep their code, anything else is Unknown. */
export function toEtcdError(err: unknown): EtcdError {
  if (err instanceof EtcdError) return err;
  if (err instanceof Error) return new EtcdError(C.Unknown, err.message);
  return new EtcdError(C.Unknown, String(err));
}
