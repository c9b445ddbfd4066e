# Semantic-version ranges in bash (npm's forms: exact, x-ranges, ^, ~, comparators, ||), so the buildpacks need
# nothing but bash and coreutils. Versions are MAJOR.MINOR.PATCH; pre-release tags are not considered.
# Results come back in variables, not on stdout: every $(...) is a process, and a build resolves a version on every
# rebuild.

# _semver_parts V: "v1.2.3" as SEMVER_PARTS=(1 2 3), a missing part as x.
_semver_parts() {
  local - v="${1#v}" IFS=.
  set -f
  # shellcheck disable=SC2206
  local -a p=($v)
  SEMVER_PARTS=("${p[0]:-x}" "${p[1]:-x}" "${p[2]:-x}")
}

# _semver_cmp A B: SEMVER_CMP=-1, 0 or 1 as full version A is below, at or above B.
_semver_cmp() {
  local a b i
  _semver_parts "$1"; a=("${SEMVER_PARTS[@]}")
  _semver_parts "$2"; b=("${SEMVER_PARTS[@]}")
  SEMVER_CMP=0
  for i in 0 1 2; do
    if ((10#${a[i]} < 10#${b[i]})); then SEMVER_CMP=-1; return; fi
    if ((10#${a[i]} > 10#${b[i]})); then SEMVER_CMP=1; return; fi
  done
}

_wild() { [[ "$1" == x || "$1" == X || "$1" == '*' ]]; }

# One comparator against a version: exit 0 when it holds.
_semver_one() {
  local version="$1" c="$2" op lo hi p
  op="${c%%[0-9xX*v]*}"
  c="${c#"$op"}"
  _semver_parts "$c"; p=("${SEMVER_PARTS[@]}")
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
      _semver_cmp "$version" "$full"; r=$SEMVER_CMP
      case "$op" in '>=') ((r >= 0)) ;; '>') ((r > 0)) ;; '<=') ((r <= 0)) ;; '<') ((r < 0)) ;; esac
      return ;;
    '' | '=')
      _wild "${p[0]}" && return 0
      if _wild "${p[1]}"; then lo="${p[0]}.0.0"; hi="$((p[0] + 1)).0.0"
      elif _wild "${p[2]}"; then lo="${p[0]}.${p[1]}.0"; hi="${p[0]}.$((p[1] + 1)).0"
      else _semver_cmp "$version" "${p[0]}.${p[1]}.${p[2]}"; ((SEMVER_CMP == 0)); return; fi ;;
    *) return 1 ;;
  esac
  _semver_cmp "$version" "$lo"; ((SEMVER_CMP != -1)) || return 1
  _semver_cmp "$version" "$hi"; ((SEMVER_CMP == -1))
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

# semver_resolve RANGE VERSION...: the highest VERSION in RANGE into REPLY; exit 1 (REPLY empty) when none is.
semver_resolve() {
  local range="$1" best="" v
  shift
  for v in "$@"; do
    semver_satisfies "$v" "$range" || continue
    if [[ -z "$best" ]]; then best="$v"; continue; fi
    _semver_cmp "$v" "$best"
    ((SEMVER_CMP == 1)) && best="$v"
  done
  REPLY="$best"
  [[ -n "$best" ]]
}
