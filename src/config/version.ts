// Version strings tetcd reports: its own, and the etcd release it is compatible with (what clients see in
// Maintenance.Status, /version and `tetcd --version`'s "etcd Version:" line).

/** tetcd's own release (kept in step with package.json by the lead). */
const TETCD_VERSION = '0.1.0';

/** The etcd server version tetcd claims: clients and scripts compare against this. */
export const ETCD_SERVER_VERSION = '3.4.23';

/** The cluster version etcd 3.4 reports in /version ("etcdcluster") once the cluster has agreed. */
export const ETCD_CLUSTER_VERSION = '3.4.0';

/** The build records no commit; etcd prints this same placeholder when built without its ./build script. */
const GIT_SHA = 'Not provided';

/** Node's process.arch in Go's GOARCH spelling, so `OS/Arch` reads like etcd's. */
function goArch(arch: string): string {
  switch (arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    default:
      return arch;
  }
}

/**
 * The `--version` text. Line 1 is byte-identical to etcd's (`etcd Version: 3.4.23`) because tools parse it;
 * the "Go Version" line names tetcd and Node instead of a Go toolchain, and no other line contains the
 * substring "etcd Version" so a grep for it finds one line.
 *
 *   versionText({ node: process.version, platform: process.platform, arch: process.arch })
 */
export function versionText(runtime: { node: string; platform: string; arch: string }): string {
  return [
    `etcd Version: ${ETCD_SERVER_VERSION}`,
    `Git SHA: ${GIT_SHA}`,
    `Go Version: none (tetcd ${TETCD_VERSION} on Node.js ${runtime.node})`,
    `Go OS/Arch: ${runtime.platform}/${goArch(runtime.arch)}`,
    '',
  ].join('\n');
}
