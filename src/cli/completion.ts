import type { Command } from 'commander';
import { StrataError } from '../oci/errors.js';

interface Node {
  path: string[];
  subcommands: string[];
  options: string[];
}

/** Every command with its subcommands and options, from the program itself, so completion never drifts from it. */
function walk(cmd: Command, path: string[], out: Node[]): void {
  const subs = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
  out.push({ path, subcommands: subs.map((c) => c.name()), options: cmd.options.flatMap((o) => [o.short, o.long].filter((x): x is string => Boolean(x))) });
  for (const c of subs) walk(c, [...path, c.name()], out);
}

const GLOBAL = ['-v', '--verbose', '-q', '--quiet', '--timestamps', '--no-color', '--force-color', '--help'];

/** A completion script for bash, zsh or fish: command words by position, then that command's options. */
export function completionScript(shell: string, program: Command): string {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  const key = (path: string[]) => path.join(' ');
  if (shell === 'bash' || shell === 'zsh') {
    const cases = nodes
      .map((n) => `    "${key(n.path)}") words="${[...n.subcommands, ...n.options, ...GLOBAL].join(' ')}" ;;`)
      .join('\n');
    const body = `_strata() {
  local cur path="" w words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) ;; *) case " $(_strata_words "\${path# }") " in *" $w "*) path="$path $w" ;; esac ;; esac
  done
  COMPREPLY=( $(compgen -W "$(_strata_words "\${path# }")" -- "$cur") )
}
_strata_words() {
  local words=""
  case "$1" in
${cases}
  esac
  echo "$words"
}
complete -o default -F _strata strata
`;
    return shell === 'zsh' ? `autoload -U +X bashcompinit && bashcompinit\n${body}` : body;
  }
  if (shell === 'fish') {
    const lines = ['complete -c strata -f'];
    for (const n of nodes) {
      const cond = n.path.length ? `__fish_seen_subcommand_from ${n.path[n.path.length - 1]}` : '__fish_use_subcommand';
      for (const s of n.subcommands) lines.push(`complete -c strata -n '${cond}' -a ${s}`);
      for (const o of n.options) lines.push(o.startsWith('--') ? `complete -c strata -n '${cond}' -l ${o.slice(2)}` : `complete -c strata -n '${cond}' -s ${o.slice(1)}`);
    }
    return `${lines.join('\n')}\n`;
  }
  throw new StrataError(`completion "${shell}": use bash, zsh or fish`);
}
