# Dependency lists in buildpack.toml ([[metadata.dependencies]] id, version, uri, sha256, licenses) and their
# download: file:// and http:// through a mirror (BP_DEPENDENCY_MIRROR), checked against the listed sha256.
# bash and coreutils only (plus sed, which every Debian has).

# Results come back in REPLY (and DEPS_VALUES), not on stdout: every $(...) is a process, and these run on every
# rebuild.

# deps_versions TOML ID: the versions listed for ID, in DEPS_VALUES.
deps_versions() {
  deps_field "$1" "$2" '' version
}

# host_arch: this machine's architecture, as images name it, in REPLY (bash's own HOSTTYPE: no uname to start).
host_arch() {
  case "$HOSTTYPE" in x86_64) REPLY=amd64 ;; aarch64 | arm64) REPLY=arm64 ;; *) REPLY="$HOSTTYPE" ;; esac
}

# The architecture dependencies are chosen for: the build's target (CNB_TARGET_ARCH, which the platform sets from the
# run image), else this machine's. An entry with no arch fits any.
host_arch
DEPS_ARCH="${CNB_TARGET_ARCH:-$REPLY}"

# deps_field TOML ID VERSION FIELD: one field of the dependencies of ID (VERSION empty = every entry of ID) for
# DEPS_ARCH: every match in DEPS_VALUES, the first in REPLY (empty when none).
deps_field() {
  local toml="$1" id="$2" version="$3" field="$4" line in=0 key val
  local -A entry=()
  DEPS_VALUES=()
  flush() {
    if [[ "${entry[id]:-}" == "$id" && ( -z "$version" || "${entry[version]:-}" == "$version" ) && ( -z "${entry[arch]:-}" || "${entry[arch]}" == "$DEPS_ARCH" ) && -n "${entry[$field]:-}" ]]; then
      DEPS_VALUES+=("${entry[$field]}")
    fi
    entry=()
  }
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%%#*}"
    if [[ "$line" =~ ^[[:space:]]*\[\[metadata\.dependencies\]\] ]]; then flush; in=1; continue; fi
    if [[ "$line" =~ ^[[:space:]]*\[ ]]; then flush; in=0; continue; fi
    ((in)) || continue
    if [[ "$line" =~ ^[[:space:]]*([A-Za-z0-9_-]+)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
      key="${BASH_REMATCH[1]}"; val="${BASH_REMATCH[2]}"
      val="${val%"${val##*[![:space:]]}"}"
      val="${val#\"}"; val="${val%\"}"
      val="${val#[}"; val="${val%]}"; val="${val//\"/}"
      entry[$key]="$val"
    fi
  done <"$toml"
  flush
  REPLY="${DEPS_VALUES[0]:-}"
}

# deps_url URI: where to fetch URI from, in REPLY — its host and path under BP_DEPENDENCY_MIRROR when one is set,
# else the copy an offline buildpack carries in its own deps/ dir, else the URI itself.
deps_url() {
  local uri="$1" mirror="${BP_DEPENDENCY_MIRROR:-}" bp="${CNB_BUILDPACK_DIR:-}"
  if [[ -n "$mirror" ]]; then REPLY="${mirror%/}/${uri#*://}"
  elif [[ -n "$bp" && -f "$bp/deps/${uri#*://}" ]]; then REPLY="file://$bp/deps/${uri#*://}"
  else REPLY="$uri"; fi
}

# deps_stream URL: the file at URL on stdout. file:// by cat, http:// by bash's /dev/tcp (HTTP/1.0, no TLS: the
# headers are read line by line, then the body streams); https needs curl or wget.
deps_stream() {
  local url="$1"
  case "$url" in
    file://*) cat "${url#file://}" ;;
    http://*)
      local rest="${url#http://}" host port path status line
      host="${rest%%/*}"; path="/${rest#*/}"; port=80
      [[ "$host" == *:* ]] && { port="${host##*:}"; host="${host%:*}"; }
      exec 3<>"/dev/tcp/$host/$port" || return 1
      printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
      IFS= read -r status <&3 || status="no response"
      while IFS= read -r line <&3 && [[ "$line" != $'\r' && -n "$line" ]]; do :; done
      if [[ "$status" != *" 200 "* ]]; then exec 3<&-; echo "GET $url: ${status%$'\r'}" >&2; return 1; fi
      cat <&3
      exec 3<&- ;;
    *)
      if command -v curl >/dev/null; then curl -fsSL "$url"
      elif command -v wget >/dev/null; then wget -q -O - "$url"
      else echo "cannot fetch $url: set BP_DEPENDENCY_MIRROR to a file:// or http:// mirror, or add curl to the build image" >&2; return 1; fi ;;
  esac
}

# deps_unpack URL SHA256 DIR WHO NAME: downloads the .tar.gz at URL into DIR (its top directory stripped) in one pass,
# its checksum taken on the way rather than in a second read of a saved copy. On a mismatch or a failed download DIR
# is emptied and the call fails, naming the dependency (NAME) and the cause.
deps_unpack() {
  local url="$1" sha="$2" dir="$3" who="$4" name="$5" tmp got fetched untarred summer
  local -
  set +e +o pipefail
  tmp="$(mktemp -d)"
  mkfifo "$tmp/body"
  sha256sum <"$tmp/body" >"$tmp/sum" &
  summer=$!
  deps_stream "$url" | tee "$tmp/body" | tar -xzf - -C "$dir" --strip-components=1 2>"$tmp/tar.err"
  fetched=${PIPESTATUS[0]} untarred=${PIPESTATUS[2]}
  wait "$summer"
  got="$(cut -d' ' -f1 <"$tmp/sum")"
  if [[ "$fetched" != 0 ]]; then echo "$who: download of $url failed" >&2
  elif [[ "$got" != "$sha" ]]; then echo "$who: checksum mismatch for $name: expected $sha, got $got; the mirror serves a different file" >&2
  elif [[ "$untarred" != 0 ]]; then echo "$who: $name from $url does not unpack: $(head -c 300 "$tmp/tar.err" | tr '\n' ' ')" >&2
  else rm -rf "$tmp"; return 0; fi
  rm -rf "$tmp"
  find "$dir" -mindepth 1 -delete
  return 1
}

# write_unchanged FILE VALUE: writes VALUE to FILE only when it differs. Rewriting a file of a reused layer with the
# same bytes still marks the layer changed (its ctime moves), and the platform then has to read it again.
write_unchanged() {
  local now=""
  [[ -f "$1" ]] && { IFS= read -r -d '' now <"$1" || true; }
  if [[ ! -f "$1" || "$now" != "$2" ]]; then
    mkdir -p "${1%/*}"
    printf '%s' "$2" >"$1"
  fi
}

# has_line FILE LINE: whether FILE holds LINE exactly. In bash alone: a rebuild checks its layers' records with it,
# and starting grep for each check costs more than the check.
has_line() {
  local l
  [[ -f "$1" ]] || return 1
  while IFS= read -r l || [[ -n "$l" ]]; do [[ "$l" == "$2" ]] && return 0; done <"$1"
  return 1
}
