// `tetcd --help`: etcd's usage block and flag list (same groups, order, defaults and wording), generated
// from the flag table, with unimplemented flags marked and tetcd's own flags in a group of their own.
import { FLAGS, type FlagGroup, type FlagSpec } from './flags.js';
import { IMPLEMENTED } from './implemented.js';

/** The usage block (etcd prints it on stderr for --help and after a flag error). */
export function usageText(): string {
  return `Usage:

  tetcd [flags]
    Start a tetcd member (an etcd v3 compatible server).

  tetcd --version
    Show the version of etcd this member is compatible with, and of tetcd.

  tetcd -h | --help
    Show the help information about tetcd.

  tetcd snapshot status|restore <filename> [options]
    Inspect or restore a snapshot file (etcdctl snapshot save, from etcd or tetcd) as etcdctl does.

  tetcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.
`;
}

const GROUP_ORDER: readonly FlagGroup[] = [
  'Member',
  'Clustering',
  'Security',
  'Auth',
  'Profiling and Monitoring',
  'Logging',
  'v2 Proxy (to be deprecated in v4)',
  'Experimental feature',
  'Unsafe feature',
  'TO BE DEPRECATED',
  'tetcd',
];

const NOT_YET = ' (parsed; not implemented yet)';

function entry(spec: FlagSpec): string {
  const shown = spec.helpDefault ?? `'${spec.def}'`;
  const implemented = IMPLEMENTED[spec.name as keyof typeof IMPLEMENTED];
  // The mark goes on the first help line so it stays next to the flag name.
  const lines = spec.help.split('\n');
  lines[0] += implemented ? '' : NOT_YET;
  return `  --${spec.name} ${shown}\n    ${lines.join('\n')}\n`;
}

/** The flag list (etcd prints it on stdout for --help). */
export function flagsHelpText(): string {
  let out = '';
  for (const group of GROUP_ORDER) {
    const specs = FLAGS.filter((f) => f.group === group) as readonly FlagSpec[];
    if (group === 'tetcd') {
      out += '\ntetcd only (not in etcd):\n';
    } else if (group === 'TO BE DEPRECATED') {
      out += '\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus protocol!\n\nTO BE DEPRECATED:\n\n';
    } else {
      out += `\n${group}:\n`;
    }
    for (const spec of specs) out += entry(spec);
  }
  out += `\nEvery flag can also be set as an environment variable ETCD_<FLAG_NAME> (e.g. ETCD_INITIAL_CLUSTER); a flag given
on the command line must not also be set in the environment. Flags marked${NOT_YET} are accepted and checked
like etcd's but do not change tetcd's behaviour yet.
`;
  return out;
}
