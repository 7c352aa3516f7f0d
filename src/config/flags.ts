// The table of every flag `tetcd` accepts: etcd 3.4.23's (names, Go value kinds, defaults, help texts from
// `etcd --help` and etcdmain/config.go) plus tetcd's own tuning flags. Parsing, env vars, the YAML file and
// --help are all driven by this one table; whether a flag's feature works yet lives in ./implemented.ts.

/**
 * How a flag's text becomes a value (Go's flag.Value types etcd uses):
 * string; bool; uint/uint64/int/int64 (strconv, base prefixes allowed); uint32 (etcd's uint32Value, which
 * reports raw strconv errors); duration (time.ParseDuration); urls (UniqueURLs: comma list, validated);
 * strings (comma list, order kept); set (UniqueStrings: comma list, deduplicated and sorted);
 * enum (SelectiveStringValue: one of `valids`).
 */
export type FlagKind =
  | 'string'
  | 'bool'
  | 'uint'
  | 'uint64'
  | 'int'
  | 'int64'
  | 'uint32'
  | 'duration'
  | 'urls'
  | 'strings'
  | 'set'
  | 'enum';

/** Where `--help` lists a flag; `usage` flags are described in the usage block, `hidden` ones nowhere. */
export type FlagGroup =
  | 'usage'
  | 'Member'
  | 'Clustering'
  | 'Security'
  | 'Auth'
  | 'Profiling and Monitoring'
  | 'Logging'
  | 'v2 Proxy (to be deprecated in v4)'
  | 'Experimental feature'
  | 'Unsafe feature'
  | 'TO BE DEPRECATED'
  | 'tetcd'
  | 'hidden';

/**
 * How a key is typed in the YAML config file (etcd decodes it with Go's encoding/json):
 * `number` = a JSON integer (durations in nanoseconds, as etcd's time.Duration fields), `string` = a JSON
 * string (numbers and booleans are coerced, as sigs.k8s.io/yaml does), `list` = a sequence of strings,
 * `durationOrNumber` = tetcd-only durations, accepted as "5ms" or as nanoseconds. null = not settable there.
 */
export type YamlType = 'string' | 'bool' | 'number' | 'list' | 'durationOrNumber' | null;

/** One row of the table. */
export interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  /** Default in flag syntax; '' is Go's zero value for the kind. */
  readonly def: string;
  readonly group: FlagGroup;
  readonly help: string;
  /** How --help shows the default when not as `'<def>'` (etcd prints some unquoted). */
  readonly helpDefault?: string;
  /** enum: accepted values. */
  readonly valids?: readonly string[];
  /** urls: values stored verbatim without URL validation (etcd's "exceptions", e.g. cors '*'). */
  readonly urlExceptions?: readonly string[];
  /** YAML key type; omitted = derived from kind (see yamlTypeOf). */
  readonly yaml?: YamlType;
  /** Integer kinds: the smallest value tetcd accepts (tetcd flags only; etcd's own flags keep Go's range). */
  readonly min?: bigint;
}

const MS = (us: number): string => `${us / 1000}ms`;

/** The WAL's own defaults (WAL_DEFAULTS in src/wal/index.ts), stated again because config does not import wal
 *  (DESIGN §3); test/config/config.test.ts checks that the two agree. */
const WAL_DEFAULTS = {
  segmentBytes: 64 * 1024 * 1024,
  batchBytesMax: 1024 * 1024,
  batchDelayUsMax: 0,
  idleSpinUs: 0,
} as const;

/** Every flag, in etcd's help order within each group. */
export const FLAGS = [
  // Described in the usage block.
  {
    name: 'config-file',
    kind: 'string',
    def: '',
    group: 'usage',
    yaml: null,
    help: 'Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.',
  },
  { name: 'version', kind: 'bool', def: 'false', group: 'usage', yaml: null, help: 'Print the version and exit.' },

  // Member
  { name: 'name', kind: 'string', def: 'default', group: 'Member', help: 'Human-readable name for this member.' },
  // biome-ignore lint/suspicious/noTemplateCurlyInString: etcd's help text shows the default literally as '${name}.etcd'
  { name: 'data-dir', kind: 'string', def: '', group: 'Member', helpDefault: "'${name}.etcd'", help: 'Path to the data directory.' },
  { name: 'wal-dir', kind: 'string', def: '', group: 'Member', help: 'Path to the dedicated wal directory.' },
  {
    name: 'snapshot-count',
    kind: 'uint64',
    def: '100000',
    group: 'Member',
    help: 'Number of committed transactions to trigger a snapshot to disk.',
  },
  { name: 'heartbeat-interval', kind: 'uint', def: '100', group: 'Member', help: 'Time (in milliseconds) of a heartbeat interval.' },
  {
    name: 'election-timeout',
    kind: 'uint',
    def: '1000',
    group: 'Member',
    help: 'Time (in milliseconds) for an election to timeout. See tuning documentation for details.',
  },
  {
    name: 'initial-election-tick-advance',
    kind: 'bool',
    def: 'true',
    group: 'Member',
    help: 'Whether to fast-forward initial election ticks on boot for faster election.',
  },
  {
    name: 'listen-peer-urls',
    kind: 'urls',
    def: 'http://localhost:2380',
    urlExceptions: [''],
    group: 'Member',
    yaml: 'string',
    help: 'List of URLs to listen on for peer traffic.',
  },
  {
    name: 'listen-client-urls',
    kind: 'urls',
    def: 'http://localhost:2379',
    urlExceptions: [''],
    group: 'Member',
    yaml: 'string',
    help: 'List of URLs to listen on for client traffic.',
  },
  { name: 'max-snapshots', kind: 'uint', def: '5', group: 'Member', help: 'Maximum number of snapshot files to retain (0 is unlimited).' },
  { name: 'max-wals', kind: 'uint', def: '5', group: 'Member', help: 'Maximum number of wal files to retain (0 is unlimited).' },
  {
    name: 'quota-backend-bytes',
    kind: 'int64',
    def: '0',
    group: 'Member',
    help: 'Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).',
  },
  {
    name: 'backend-batch-interval',
    kind: 'duration',
    def: '',
    group: 'Member',
    help: 'BackendBatchInterval is the maximum time before commit the backend transaction.',
  },
  {
    name: 'backend-batch-limit',
    kind: 'int',
    def: '0',
    group: 'Member',
    help: 'BackendBatchLimit is the maximum operations before commit the backend transaction.',
  },
  { name: 'max-txn-ops', kind: 'uint', def: '128', group: 'Member', help: 'Maximum number of operations permitted in a transaction.' },
  {
    name: 'max-request-bytes',
    kind: 'uint',
    def: '1572864',
    group: 'Member',
    help: 'Maximum client request size in bytes the server will accept.',
  },
  {
    name: 'max-concurrent-streams',
    kind: 'uint32',
    def: '4294967295',
    helpDefault: "'math.MaxUint32'",
    group: 'Member',
    help: 'Maximum concurrent streams that each client can open at a time.',
  },
  {
    name: 'grpc-keepalive-min-time',
    kind: 'duration',
    def: '5s',
    group: 'Member',
    help: 'Minimum duration interval that a client should wait before pinging server.',
  },
  {
    name: 'grpc-keepalive-interval',
    kind: 'duration',
    def: '2h',
    group: 'Member',
    help: 'Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).',
  },
  {
    name: 'grpc-keepalive-timeout',
    kind: 'duration',
    def: '20s',
    group: 'Member',
    help: 'Additional duration of wait before closing a non-responsive connection (0 to disable).',
  },

  // Clustering
  {
    name: 'initial-advertise-peer-urls',
    kind: 'urls',
    def: 'http://localhost:2380',
    urlExceptions: [''],
    group: 'Clustering',
    yaml: 'string',
    help: "List of this member's peer URLs to advertise to the rest of the cluster.",
  },
  {
    name: 'initial-cluster',
    kind: 'string',
    def: 'default=http://localhost:2380',
    group: 'Clustering',
    help: 'Initial cluster configuration for bootstrapping.',
  },
  {
    name: 'initial-cluster-state',
    kind: 'enum',
    valids: ['new', 'existing'],
    def: 'new',
    group: 'Clustering',
    yaml: 'string',
    help: "Initial cluster state ('new' or 'existing').",
  },
  {
    name: 'initial-cluster-token',
    kind: 'string',
    def: 'etcd-cluster',
    group: 'Clustering',
    help: 'Initial cluster token for the etcd cluster during bootstrap.\n    Specifying this can protect you from unintended cross-cluster interaction when running multiple clusters.',
  },
  {
    name: 'advertise-client-urls',
    kind: 'urls',
    def: 'http://localhost:2379',
    urlExceptions: [''],
    group: 'Clustering',
    yaml: 'string',
    help: "List of this member's client URLs to advertise to the public.\n    The client URLs advertised should be accessible to machines that talk to etcd cluster. etcd client libraries parse these URLs to connect to the cluster.",
  },
  { name: 'discovery', kind: 'string', def: '', group: 'Clustering', help: 'Discovery URL used to bootstrap the cluster.' },
  {
    name: 'discovery-fallback',
    kind: 'enum',
    valids: ['proxy', 'exit'],
    def: 'proxy',
    group: 'Clustering',
    yaml: 'string',
    help: "Expected behavior ('exit' or 'proxy') when discovery services fails.\n    \"proxy\" supports v2 API only.",
  },
  { name: 'discovery-proxy', kind: 'string', def: '', group: 'Clustering', help: 'HTTP proxy to use for traffic to discovery service.' },
  { name: 'discovery-srv', kind: 'string', def: '', group: 'Clustering', help: 'DNS srv domain used to bootstrap the cluster.' },
  {
    name: 'discovery-srv-name',
    kind: 'string',
    def: '',
    group: 'Clustering',
    help: 'Suffix to the dns srv name queried when bootstrapping.',
  },
  {
    name: 'strict-reconfig-check',
    kind: 'bool',
    def: 'true',
    group: 'Clustering',
    help: 'Reject reconfiguration requests that would cause quorum loss.',
  },
  {
    name: 'pre-vote',
    kind: 'bool',
    def: 'true',
    group: 'Clustering',
    help: 'Enable to run an additional Raft election phase (on by default, as in etcd 3.5: a member rejoining after a partition cannot depose a healthy leader).',
  },
  {
    name: 'auto-compaction-retention',
    kind: 'string',
    def: '0',
    group: 'Clustering',
    help: 'Auto compaction retention length. 0 means disable auto compaction.',
  },
  {
    name: 'auto-compaction-mode',
    kind: 'string',
    def: 'periodic',
    group: 'Clustering',
    help: "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.",
  },
  { name: 'enable-v2', kind: 'bool', def: 'false', group: 'Clustering', help: 'Accept etcd V2 client requests.' },

  // Security
  { name: 'cert-file', kind: 'string', def: '', group: 'Security', yaml: null, help: 'Path to the client server TLS cert file.' },
  { name: 'key-file', kind: 'string', def: '', group: 'Security', yaml: null, help: 'Path to the client server TLS key file.' },
  { name: 'client-cert-auth', kind: 'bool', def: 'false', group: 'Security', yaml: null, help: 'Enable client cert authentication.' },
  {
    name: 'client-crl-file',
    kind: 'string',
    def: '',
    group: 'Security',
    yaml: null,
    help: 'Path to the client certificate revocation list file.',
  },
  {
    name: 'client-cert-allowed-hostname',
    kind: 'string',
    def: '',
    group: 'Security',
    yaml: null,
    help: 'Allowed TLS hostname for client cert authentication.',
  },
  {
    name: 'trusted-ca-file',
    kind: 'string',
    def: '',
    group: 'Security',
    yaml: null,
    help: 'Path to the client server TLS trusted CA cert file.',
  },
  { name: 'auto-tls', kind: 'bool', def: 'false', group: 'Security', yaml: null, help: 'Client TLS using generated certificates.' },
  { name: 'peer-cert-file', kind: 'string', def: '', group: 'Security', yaml: null, help: 'Path to the peer server TLS cert file.' },
  { name: 'peer-key-file', kind: 'string', def: '', group: 'Security', yaml: null, help: 'Path to the peer server TLS key file.' },
  {
    name: 'peer-client-cert-auth',
    kind: 'bool',
    def: 'false',
    group: 'Security',
    yaml: null,
    help: 'Enable peer client cert authentication.',
  },
  {
    name: 'peer-trusted-ca-file',
    kind: 'string',
    def: '',
    group: 'Security',
    yaml: null,
    help: 'Path to the peer server TLS trusted CA file.',
  },
  {
    name: 'peer-cert-allowed-cn',
    kind: 'string',
    def: '',
    group: 'Security',
    yaml: null,
    help: 'Required CN for client certs connecting to the peer endpoint.',
  },
  {
    name: 'peer-cert-allowed-hostname',
    kind: 'string',
    def: '',
    group: 'Security',
    yaml: null,
    help: 'Allowed TLS hostname for inter peer authentication.',
  },
  {
    name: 'peer-auto-tls',
    kind: 'bool',
    def: 'false',
    group: 'Security',
    yaml: null,
    help: 'Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.',
  },
  {
    name: 'peer-crl-file',
    kind: 'string',
    def: '',
    group: 'Security',
    yaml: null,
    help: 'Path to the peer certificate revocation list file.',
  },
  {
    name: 'cipher-suites',
    kind: 'strings',
    def: '',
    group: 'Security',
    yaml: 'list',
    help: 'Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).',
  },
  {
    name: 'cors',
    kind: 'urls',
    def: '*',
    urlExceptions: ['*'],
    group: 'Security',
    yaml: 'string',
    help: 'Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).',
  },
  {
    name: 'host-whitelist',
    kind: 'set',
    def: '*',
    group: 'Security',
    yaml: 'string',
    help: 'Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).',
  },

  // Auth
  {
    name: 'auth-token',
    kind: 'string',
    def: 'simple',
    group: 'Auth',
    help: "Specify a v3 authentication token type and its options ('simple' or 'jwt').",
  },
  {
    name: 'bcrypt-cost',
    kind: 'uint',
    def: '10',
    helpDefault: '10',
    group: 'Auth',
    help: 'Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31.',
  },
  { name: 'auth-token-ttl', kind: 'uint', def: '300', helpDefault: '300', group: 'Auth', help: 'Time (in seconds) of the auth-token-ttl.' },

  // Profiling and Monitoring
  {
    name: 'enable-pprof',
    kind: 'bool',
    def: 'false',
    group: 'Profiling and Monitoring',
    help: 'Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof/"',
  },
  {
    name: 'metrics',
    kind: 'string',
    def: 'basic',
    group: 'Profiling and Monitoring',
    help: "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics.",
  },
  {
    name: 'listen-metrics-urls',
    kind: 'urls',
    def: '',
    urlExceptions: [''],
    group: 'Profiling and Monitoring',
    yaml: 'string',
    help: 'List of URLs to listen on for the metrics and health endpoints.',
  },

  // Logging
  {
    name: 'logger',
    kind: 'string',
    def: 'capnslog',
    group: 'Logging',
    help: "Specify 'zap' for structured logging or 'capnslog'. [WARN] 'capnslog' will be deprecated in v3.5.",
  },
  {
    name: 'log-outputs',
    kind: 'set',
    def: 'default',
    group: 'Logging',
    yaml: 'list',
    help: "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.",
  },
  {
    name: 'log-level',
    kind: 'string',
    def: 'info',
    group: 'Logging',
    help: 'Configures log level. Only supports debug, info, warn, error, panic, or fatal.',
  },

  // v2 proxy
  {
    name: 'proxy',
    kind: 'enum',
    valids: ['off', 'readonly', 'on'],
    def: 'off',
    group: 'v2 Proxy (to be deprecated in v4)',
    yaml: 'string',
    help: "Proxy mode setting ('off', 'readonly' or 'on').",
  },
  {
    name: 'proxy-failure-wait',
    kind: 'uint',
    def: '5000',
    helpDefault: '5000',
    group: 'v2 Proxy (to be deprecated in v4)',
    help: 'Time (in milliseconds) an endpoint will be held in a failed state.',
  },
  {
    name: 'proxy-refresh-interval',
    kind: 'uint',
    def: '30000',
    helpDefault: '30000',
    group: 'v2 Proxy (to be deprecated in v4)',
    help: 'Time (in milliseconds) of the endpoints refresh interval.',
  },
  {
    name: 'proxy-dial-timeout',
    kind: 'uint',
    def: '1000',
    helpDefault: '1000',
    group: 'v2 Proxy (to be deprecated in v4)',
    help: 'Time (in milliseconds) for a dial to timeout.',
  },
  {
    name: 'proxy-write-timeout',
    kind: 'uint',
    def: '5000',
    helpDefault: '5000',
    group: 'v2 Proxy (to be deprecated in v4)',
    help: 'Time (in milliseconds) for a write to timeout.',
  },
  {
    name: 'proxy-read-timeout',
    kind: 'uint',
    def: '0',
    helpDefault: '0',
    group: 'v2 Proxy (to be deprecated in v4)',
    help: 'Time (in milliseconds) for a read to timeout.',
  },

  // Experimental
  {
    name: 'experimental-initial-corrupt-check',
    kind: 'bool',
    def: 'false',
    group: 'Experimental feature',
    help: 'Enable to check data corruption before serving any client/peer traffic.',
  },
  {
    name: 'experimental-corrupt-check-time',
    kind: 'duration',
    def: '0s',
    group: 'Experimental feature',
    help: 'Duration of time between cluster corruption check passes.',
  },
  {
    name: 'experimental-enable-v2v3',
    kind: 'string',
    def: '',
    group: 'Experimental feature',
    help: 'Serve v2 requests through the v3 backend under a given prefix.',
  },
  {
    name: 'experimental-backend-bbolt-freelist-type',
    kind: 'string',
    def: 'array',
    group: 'Experimental feature',
    help: 'ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types).',
  },
  {
    name: 'experimental-enable-lease-checkpoint',
    kind: 'bool',
    def: 'false',
    group: 'Experimental feature',
    help: 'ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL to prevent indefinite auto-renewal of long lived leases.',
  },
  {
    name: 'experimental-enable-lease-checkpoint-persist',
    kind: 'bool',
    def: 'false',
    group: 'Experimental feature',
    help: 'Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases. Requires experimental-enable-lease-checkpoint to be enabled.',
  },
  {
    name: 'experimental-compaction-batch-limit',
    kind: 'int',
    def: '1000',
    helpDefault: '1000',
    group: 'Experimental feature',
    help: 'ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch.',
  },
  {
    name: 'experimental-peer-skip-client-san-verification',
    kind: 'bool',
    def: 'false',
    group: 'Experimental feature',
    yaml: null,
    help: 'Skip verification of SAN field in client certificate for peer connections.',
  },
  {
    name: 'experimental-watch-progress-notify-interval',
    kind: 'duration',
    def: '10m',
    group: 'Experimental feature',
    help: 'Duration of periodical watch progress notification.',
  },
  {
    name: 'experimental-warning-apply-duration',
    kind: 'duration',
    def: '100ms',
    group: 'Experimental feature',
    help: 'Warning is generated if requests take more than this duration.',
  },
  {
    name: 'experimental-max-learners',
    kind: 'uint',
    def: '1',
    group: 'Experimental feature',
    yaml: 'number',
    help: "Set the max number of learner members allowed in the cluster membership. (etcd 3.6's flag; etcd 3.4 allows one.)",
  },

  // Unsafe
  { name: 'force-new-cluster', kind: 'bool', def: 'false', group: 'Unsafe feature', help: 'Force to create a new one-member cluster.' },
  {
    name: 'unsafe-no-fsync',
    kind: 'bool',
    def: 'false',
    group: 'Unsafe feature',
    help: 'Disables fsync, unsafe, will cause data loss. (Accepted by etcd 3.4.23 but absent from its --help.)',
  },

  // Deprecated
  {
    name: 'debug',
    kind: 'bool',
    def: 'false',
    group: 'TO BE DEPRECATED',
    help: "Enable debug-level logging for etcd. [WARN] Will be deprecated in v3.5. Use '--log-level=debug' instead.",
  },
  {
    name: 'log-package-levels',
    kind: 'string',
    def: '',
    group: 'TO BE DEPRECATED',
    help: "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').",
  },
  {
    name: 'log-output',
    kind: 'set',
    def: 'default',
    group: 'TO BE DEPRECATED',
    yaml: 'list',
    help: "[TO BE DEPRECATED IN v3.5] use '--log-outputs'. (Absent from etcd's --help.)",
  },
  { name: 'enable-grpc-gateway', kind: 'bool', def: 'true', group: 'hidden', help: 'Enable GRPC gateway.' },

  // tetcd only
  {
    name: 'max-range-response-bytes',
    kind: 'uint',
    def: '0',
    group: 'tetcd',
    yaml: 'number',
    help: 'Byte budget of one Range response: past it the server stops adding kvs and sets more=true (0 = no budget, as etcd).',
  },
  {
    name: 'quota-auto-disarm',
    kind: 'bool',
    def: 'false',
    group: 'tetcd',
    help: "Clear this member's NOSPACE alarm by itself once compaction and defragment bring the backend under 90% of --quota-backend-bytes (etcd waits for 'etcdctl alarm disarm').",
  },
  {
    name: 'wal-batch-max-bytes',
    kind: 'uint',
    def: String(WAL_DEFAULTS.batchBytesMax),
    min: 1n,
    group: 'tetcd',
    yaml: 'number',
    help: 'Most bytes of WAL records one write+fdatasync covers (group commit).',
  },
  {
    name: 'wal-batch-max-delay',
    kind: 'duration',
    def: MS(WAL_DEFAULTS.batchDelayUsMax),
    group: 'tetcd',
    yaml: 'durationOrNumber',
    help: 'How long the WAL writer may wait to gather more records before syncing (0 = sync as soon as the previous sync ends).',
  },
  {
    name: 'wal-writer-idle-spin',
    kind: 'duration',
    def: MS(WAL_DEFAULTS.idleSpinUs),
    group: 'tetcd',
    yaml: 'durationOrNumber',
    help: "How long the WAL writer thread polls for the next append after a sync before it sleeps: spends idle CPU to cut a lone writer's wake-up latency (0 = sleep at once).",
  },
  {
    name: 'wal-segment-bytes',
    kind: 'uint',
    def: String(WAL_DEFAULTS.segmentBytes),
    min: 65536n,
    group: 'tetcd',
    yaml: 'number',
    help: 'Size WAL segment files are preallocated to and rotated at.',
  },
  {
    name: 'worker-threads',
    kind: 'uint',
    def: '0',
    group: 'tetcd',
    yaml: 'number',
    help: "Threads of the member's worker pool, which builds the watch responses of entries that reach --watch-pool-min-watchers watchers and decodes JSON gateway bodies of --gateway-pool-min-bytes or more (0 = no pool, everything on the main thread; with --client-workers both stay on the main thread of their process).",
  },
  {
    name: 'gateway-pool-min-bytes',
    kind: 'uint',
    def: '65536',
    min: 1n,
    group: 'tetcd',
    yaml: 'number',
    help: 'JSON gateway request bodies of at least this many bytes are decoded on the worker threads (with --worker-threads > 0); smaller ones on the main thread, where they are cheaper.',
  },
  {
    name: 'watch-pool-min-watchers',
    kind: 'uint',
    def: '1000',
    min: 1n,
    group: 'tetcd',
    yaml: 'number',
    help: "Watchers an applied entry's events must reach for their responses to be built on the worker threads (with --worker-threads > 0); smaller fan-outs are built on the main thread.",
  },
  {
    name: 'client-workers',
    kind: 'uint',
    def: '0',
    group: 'tetcd',
    yaml: 'number',
    help: 'Processes that terminate client connections and forward to the member (0 = the member serves clients itself).',
  },
  {
    name: 'self-signed-cert-validity',
    kind: 'uint',
    def: '1',
    group: 'tetcd',
    min: 1n,
    help: "The validity period, in years, of the client and peer certificates --auto-tls and --peer-auto-tls generate (etcd 3.5's flag; etcd 3.4 makes them valid 1 year).",
  },
  {
    name: 'lease-checkpoint',
    kind: 'bool',
    def: 'true',
    group: 'tetcd',
    help: "The leader checkpoints long leases' remaining TTL through Raft, so a leader change does not restart them (etcd's --experimental-enable-lease-checkpoint, on by default; the remainder is always persisted).",
  },
  {
    name: 'lease-checkpoint-interval',
    kind: 'duration',
    def: '5m0s',
    group: 'tetcd',
    yaml: 'durationOrNumber',
    help: "How often the leader checkpoints a lease's remaining TTL (etcd's default, 5m); leases shorter than it are never checkpointed.",
  },
  {
    name: 'v8-workers-sched',
    kind: 'enum',
    valids: ['low', 'idle', 'normal'],
    def: 'low',
    group: 'tetcd',
    yaml: 'string',
    help: "Priority of V8's background threads (compiler, garbage-collector helpers): 'low' (nice 10), 'idle' (SCHED_IDLE: only CPU time nothing else wants; starves them on a busy machine) or 'normal'.",
  },
  {
    name: 'grpc-engine',
    kind: 'enum',
    valids: ['node', 'raw'],
    def: 'raw',
    group: 'tetcd',
    yaml: 'string',
    help: "HTTP/2 under the gRPC server: 'node' (node:http2) or 'raw' (tetcd's own framing on the socket).",
  },
  {
    name: 'proposal-batch-max',
    kind: 'uint',
    def: '4096',
    min: 1n,
    group: 'tetcd',
    yaml: 'number',
    help: 'Most proposals handed to Raft as one append per Ready; the rest wait for the next.',
  },
  {
    name: 'snapshot-catchup-entries',
    kind: 'uint',
    def: '5000',
    min: 1n,
    group: 'tetcd',
    yaml: 'number',
    help: 'Entries kept in memory behind a snapshot for slow followers to catch up without one (etcd 3.5: --experimental-snapshot-catchup-entries).',
  },
  {
    name: 'apply-batch-max-bytes',
    kind: 'uint',
    def: '1048576',
    min: 1n,
    group: 'tetcd',
    yaml: 'number',
    help: 'Most bytes of committed entries applied in one pass of the apply loop (Raft MaxCommittedSizePerReady).',
  },
  {
    name: 'learner-auto-promote',
    kind: 'bool',
    def: 'false',
    group: 'tetcd',
    help: 'The leader promotes a learner to voter by itself once it is in sync (as MemberPromote requires) and connected, one change at a time through the log, never below quorum.',
  },
] as const satisfies readonly FlagSpec[];

/** The name of any flag in the table. */
export type FlagName = (typeof FLAGS)[number]['name'];

/**
 * etcd 2 flags etcd 3.4 still swallows with a warning (`flag "-config" is no longer supported - ignoring.`).
 * They behave like booleans: `--snapshot` alone is fine, `--snapshot x` leaves `x` as a stray argument.
 */
export const IGNORED_FLAGS: readonly string[] = [
  'cluster-active-size',
  'cluster-remove-delay',
  'cluster-sync-interval',
  'config',
  'force',
  'max-result-buffer',
  'max-retry-attempts',
  'peer-heartbeat-interval',
  'peer-election-timeout',
  'retry-interval',
  'snapshot',
  'v',
  'vv',
];

const byName = new Map<string, FlagSpec>(FLAGS.map((f) => [f.name, f]));

/** The table row for `name`, or undefined when no such flag exists. */
export function flagSpec(name: string): FlagSpec | undefined {
  return byName.get(name);
}

/** The YAML key type of a flag (see YamlType); null when the file cannot set it under its flag name. */
export function yamlTypeOf(spec: FlagSpec): YamlType {
  if (spec.yaml !== undefined) return spec.yaml;
  switch (spec.kind) {
    case 'string':
    case 'enum':
      return 'string';
    case 'bool':
      return 'bool';
    case 'strings':
    case 'set':
      return 'list';
    default:
      return 'number';
  }
}

/** ETCD_<NAME> for a flag name: upper case, dashes to underscores (etcd's flags.FlagToEnv). */
export function flagToEnv(name: string): string {
  return 'ETCD_' + name.toUpperCase().replaceAll('-', '_');
}
