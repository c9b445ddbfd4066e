# Dependency lists in buildpack.toml ([[metadata.dependencies]] id, version, uri, sha256, licenses) and their
# download: file:// and http:// through a mirror (BP_DEPENDENCY_MIRROR), checked against the listed sha256.
# bash and coreutils only (plus sed, which every Debian has).

# deps_versions TOML ID: the versions listed for ID, one per line.
deps_versions() {
  deps_field "$1" "$2" '' version
}

# deps_field TOML ID VERSION FIELD: one field of one dependency (VERSION empty = every entry of ID).
deps_field() {
  local toml="$1" id="$2" version="$3" field="$4" line in=0 key val
  local -A entry=()
  flush() {
    if [[ "${entry[id]:-}" == "$id" && ( -z "$version" || "${entry[version]:-}" == "$version" ) && -n "${entry[$field]:-}" ]]; then
      printf '%s\n' "${entry[$field]}"
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
}

# deps_url URI: where to fetch URI from — its host and path under BP_DEPENDENCY_MIRROR when one is set, else the
# copy an offline buildpack carries in its own deps/ dir, else the URI itself.
deps_url() {
  local uri="$1" mirror="${BP_DEPENDENCY_MIRROR:-}" bp="${CNB_BUILDPACK_DIR:-}"
  if [[ -n "$mirror" ]]; then echo "${mirror%/}/${uri#*://}"
  elif [[ -n "$bp" && -f "$bp/deps/${uri#*://}" ]]; then echo "file://$bp/deps/${uri#*://}"
  else echo "$uri"; fi
}

# deps_fetch URL DEST: file:// by copy, http:// by bash's /dev/tcp (HTTP/1.0, no TLS). https needs curl or wget.
deps_fetch() {
  local url="$1" dest="$2"
  case "$url" in
    file://*) cp "${url#file://}" "$dest" ;;
    http://*)
      local rest="${url#http://}" host port path hdr
      host="${rest%%/*}"; path="/${rest#*/}"; port=80
      [[ "$host" == *:* ]] && { port="${host##*:}"; host="${host%:*}"; }
      exec 3<>"/dev/tcp/$host/$port" || return 1
      printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
      cat <&3 >"$dest.raw"
      exec 3<&-
      head -n1 "$dest.raw" | grep -q ' 200 ' || { echo "GET $url: $(head -n1 "$dest.raw")" >&2; return 1; }
      hdr="$(sed -n '1,/^\r$/p' "$dest.raw" | wc -c)"
      tail -c +"$((hdr + 1))" "$dest.raw" >"$dest"
      rm -f "$dest.raw" ;;
    *)
      if command -v curl >/dev/null; then curl -fsSL -o "$dest" "$url"
      elif command -v wget >/dev/null; then wget -q -O "$dest" "$url"
      else echo "cannot fetch $url: set BP_DEPENDENCY_MIRROR to a file:// or http:// mirror, or add curl to the build image" >&2; return 1; fi ;;
  esac
}

# deps_check FILE SHA256 WHO: fails loudly when a download does not match its listed checksum.
deps_check() {
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  [[ "$got" == "$2" ]] && return 0
  echo "$3: checksum mismatch for $(basename "$1"): expected $2, got $got; the mirror serves a different file" >&2
  return 1
}

# write_unchanged FILE VALUE: writes VALUE to FILE only when it differs. Rewriting a file of a reused layer with the
# same bytes still marks the layer changed (its ctime moves), and the platform then has to read it again.
write_unchanged() {
  if [[ ! -f "$1" ]] || [[ "$(cat "$1")" != "$2" ]]; then
    mkdir -p "$(dirname "$1")"
    printf '%s' "$2" >"$1"
  fi
}
