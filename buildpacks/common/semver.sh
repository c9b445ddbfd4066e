# Semantic-version ranges in bash (npm's forms: exact, x-ranges, ^, ~, comparators, ||), so the buildpacks need
# nothing but bash and coreutils. Versions are MAJOR.MINOR.PATCH; pre-release tags are not considered.

# Splits "v1.2.3" into three numbers (missing parts are x); prints "maj min pat".
semver_parts() {
  local v="${1#v}" IFS=.
  # shellcheck disable=SC2086
  set -- $v
  printf '%s %s %s\n' "${1:-x}" "${2:-x}" "${3:-x}"
}

# Compares two full versions: prints -1, 0 or 1.
semver_cmp() {
  local a b i
  read -r -a a <<<"$(semver_parts "$1")"
  read -r -a b <<<"$(semver_parts "$2")"
  for i in 0 1 2; do
    if ((10#${a[i]} < 10#${b[i]})); then echo -1; return; fi
    if ((10#${a[i]} > 10#${b[i]})); then echo 1; return; fi
  done
  echo 0
}

_wild() { [[ "$1" == x || "$1" == X || "$1" == '*' ]]; }

# One comparator against a version: exit 0 when it holds.
_semver_one() {
  local version="$1" c="$2" op lo hi p
  op="${c%%[0-9xX*v]*}"
  c="${c#"$op"}"
  read -r -a p <<<"$(semver_parts "$c")"
  case "$op" in
    '^')
      _wild "${p[1]}" && p[1]=0; _wild "${p[2]}" && p[2]=0
      lo="${p[0]}.${p[1]}.${p[2]}"
      if ((p[0] > 0)); then hi="$((p[0] + 1)).0.0"; elif ((p[1] > 0)); then hi="0.$((p[1] + 1)).0"; else hi="0.0.$((p[2] + 1))"; fi ;;
    '~')
      if _wild "${p[1]}"; then lo="${p[0]}.0.0"; hi="$((p[0] + 1)).0.0"
      else _wild "${p[2]}" && p[2]=0; lo="${p[0]}.${p[1]}.${p[2]}"; hi="${p[0]}.$((p[1] + 1)).0"; fi ;;
    '>=' | '>' | '<=' | '<')
      local full="${p[0]}.${p[1]}.${p[2]}" r
      _wild "${p[0]}" && return 0
      if _wild "${p[1]}"; then
        case "$op" in '>=' | '<') full="${p[0]}.0.0" ;; '>') full="$((p[0] + 1)).0.0"; op='>=' ;; '<=') full="$((p[0] + 1)).0.0"; op='<' ;; esac
      elif _wild "${p[2]}"; then
        case "$op" in '>=' | '<') full="${p[0]}.${p[1]}.0" ;; '>') full="${p[0]}.$((p[1] + 1)).0"; op='>=' ;; '<=') full="${p[0]}.$((p[1] + 1)).0"; op='<' ;; esac
      fi
      r="$(semver_cmp "$version" "$full")"
      case "$op" in '>=') ((r >= 0)) ;; '>') ((r > 0)) ;; '<=') ((r <= 0)) ;; '<') ((r < 0)) ;; esac
      return ;;
    '' | '=')
      _wild "${p[0]}" && return 0
      if _wild "${p[1]}"; then lo="${p[0]}.0.0"; hi="$((p[0] + 1)).0.0"
      elif _wild "${p[2]}"; then lo="${p[0]}.${p[1]}.0"; hi="${p[0]}.$((p[1] + 1)).0"
      else [[ "$(semver_cmp "$version" "${p[0]}.${p[1]}.${p[2]}")" == 0 ]]; return; fi ;;
    *) return 1 ;;
  esac
  [[ "$(semver_cmp "$version" "$lo")" != -1 && "$(semver_cmp "$version" "$hi")" == -1 ]]
}

# semver_satisfies VERSION RANGE: exit 0 when VERSION is in RANGE ("||" alternatives of space-separated comparators).
semver_satisfies() {
  local - version="$1" range="$2" alt c ok
  set -f # "*" is a range here, not a glob
  [[ -z "${range// /}" ]] && return 0
  range="${range//>= />=}"; range="${range//<= /<=}"; range="${range//> />}"; range="${range//< /<}"
  IFS='|' read -r -a alts <<<"${range//||/|}"
  for alt in "${alts[@]}"; do
    ok=1
    for c in $alt; do _semver_one "$version" "$c" || { ok=0; break; }; done
    ((ok)) && return 0
  done
  return 1
}

# semver_resolve RANGE VERSION...: prints the highest VERSION in RANGE; exit 1 when none is.
semver_resolve() {
  local range="$1" best="" v
  shift
  for v in "$@"; do
    semver_satisfies "$v" "$range" || continue
    if [[ -z "$best" || "$(semver_cmp "$v" "$best")" == 1 ]]; then best="$v"; fi
  done
  [[ -n "$best" ]] && echo "$best"
}
