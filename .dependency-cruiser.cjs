// Import rules of tetcd (DESIGN.md §3, "Dependencies point downward only"), checked by dependency-cruiser:
//   cli → {client_procs, api} → server → {raft, mvcc, lease, auth, watch, events, wal, transport} → base
// where base is errors, log, metrics, assert, scheduler, v8_workers and native/ (the addon loader). proto/ is a leaf
// any layer may import; config/ stands beside the member and imports only base and proto.
// test/tools/import-rules.test.ts runs this over src, bench, tools and test (zero violations; test is held to
// the general rules: no cycles, every import resolves) and over a fixture that breaks the rules (so they cannot
// silently stop matching). `npm run lint:imports` runs it by hand.

// The client processes' directory: src/client_procs (DESIGN's name) or src/workers (today's).
const CLIENT_PROCS = 'src/(client_procs|workers)/';
const CLI = '^src/cli/';
const FRONT = `^(${CLIENT_PROCS}|src/api/)`;
const SERVER = '^src/server/';
const CORE = '^src/(raft|mvcc|lease|auth|watch|events|wal|transport)/';
const BASE = '^(src/(errors|log|metrics|assert|scheduler|v8_workers)[.]ts$|src/native/)';
const PROTO = '^src/proto/';
const CONFIG = '^src/config/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No cycles anywhere (DESIGN §3): move what both sides share into a third module.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'Every import resolves; an unresolved one would also be invisible to the rules below.',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'front-not-cli',
      severity: 'error',
      comment: 'The client processes and the API are below cli: they never import it.',
      from: { path: FRONT },
      to: { path: CLI },
    },
    {
      name: 'api-not-client-procs',
      severity: 'error',
      comment: 'The client processes run the API; the API knows nothing of the client processes.',
      from: { path: '^src/api/' },
      to: { path: `^${CLIENT_PROCS}` },
    },
    {
      name: 'server-not-up',
      severity: 'error',
      comment: 'The member (src/server) is below cli, api and the client processes: it never imports them.',
      from: { path: SERVER },
      to: { path: `(${CLI})|(${FRONT})` },
    },
    {
      name: 'core-not-up',
      severity: 'error',
      comment:
        'raft, mvcc, lease, auth, watch, wal and transport are below the member: they never import server, api, client processes, cli or config.',
      from: { path: CORE },
      to: { path: `(${CLI})|(${FRONT})|(${SERVER})|(${CONFIG})` },
    },
    {
      name: 'base-imports-base-only',
      severity: 'error',
      comment:
        'errors, log, metrics, assert, v8_workers and native/ are the bottom layer: of the project they import only each other and proto.',
      from: { path: BASE },
      to: { path: '^src/', pathNot: `(${BASE})|(${PROTO})` },
    },
    {
      name: 'proto-is-a-leaf',
      severity: 'error',
      comment: 'src/proto (the codecs) is imported by every layer, so it imports nothing of the project but itself.',
      from: { path: PROTO },
      to: { path: '^(src|bench|test|tools)/', pathNot: PROTO },
    },
    {
      name: 'raft-imports-only-raft',
      severity: 'error',
      comment: 'src/raft is a pure state machine: it imports nothing outside src/raft, not even node: modules or packages.',
      from: { path: '^src/raft/' },
      to: { pathNot: '^src/raft/' },
    },
    {
      name: 'mvcc-knows-no-raft',
      severity: 'error',
      comment: 'src/mvcc knows nothing of Raft.',
      from: { path: '^src/mvcc/' },
      to: { path: '^src/raft/' },
    },
    {
      name: 'lease-talks-to-the-store-through-interfaces',
      severity: 'error',
      comment:
        'src/lease reaches the backend and the key index through interfaces of its own (LeaseBackend, LeasedKeySource), so the lessor is tested with no LMDB and Lock/Election build on it without the store: it imports no other core area.',
      from: { path: '^src/lease/' },
      to: { path: '^src/(raft|mvcc|auth|watch|events|wal|transport)/' },
    },
    {
      name: 'config-not-cli-nor-wal',
      severity: 'error',
      comment: 'src/config imports neither cli nor wal (DESIGN §3), nor any other part of the member: only base and proto.',
      from: { path: CONFIG },
      to: { path: `(${CLI})|(${FRONT})|(${SERVER})|(${CORE})` },
    },
    {
      name: 'src-not-bench-test-tools',
      severity: 'error',
      comment: 'src never imports bench, test or tools.',
      from: { path: '^src/' },
      to: { path: '^(bench|test|tools)/' },
    },
    {
      name: 'bench-not-test',
      severity: 'error',
      comment: 'bench does not import test: what both need lives in bench/lib or tools.',
      from: { path: '^bench/' },
      to: { path: '^test/' },
    },
    {
      name: 'tools-not-bench-nor-test',
      severity: 'error',
      comment: 'tools are imported by tests and bench, never the other way round.',
      from: { path: '^tools/' },
      to: { path: '^(bench|test)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a layer that names another layer's types depends on it.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    // Not sources: the compiled tree, and the fixture that breaks the rules on purpose. (node_modules is not
    // excluded, only not followed: an import of a package must still be seen by the rules.)
    exclude: { path: '^(dist|build|test/fixtures/import-rules)/' },
  },
};
