# scripts/services.d/s3.sh — S3 on http://127.0.0.1:7070 (sourced by scripts/services).
#
# versitygw (Apache-2.0) with its posix backend over $SVC_DIR/s3/data; the binary is built once
# into $SVC_CACHE/bin with `go install` from the Go module proxy. Root credentials
# tidemark / tidemark-secret, region us-east-1, bucket `tidemark` created on start.
# Requests are signed with curl's --aws-sigv4 (no aws CLI needed).

s3_timeout=120
S3_VERSITYGW_VERSION=${TIDEMARK_VERSITYGW_VERSION:-v1.8.0}
S3_ACCESS=tidemark
S3_SECRET=tidemark-secret
S3_REGION=us-east-1
S3_BUCKET=tidemark
S3_ENDPOINT=http://127.0.0.1:7070

_s3_bin() { echo "$SVC_CACHE/bin/versitygw"; }

s3_install() {
  local bin stamp
  bin=$(_s3_bin)
  stamp="$bin.version"
  if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$S3_VERSITYGW_VERSION" ]]; then return 0; fi
  mkdir -p "$SVC_CACHE/bin"
  svc_log "s3: go install github.com/versity/versitygw/cmd/versitygw@$S3_VERSITYGW_VERSION (takes a few minutes once)"
  # outside the repo so our go.mod does not interfere
  (cd "$SVC_CACHE" && GOBIN="$SVC_CACHE/bin" GOFLAGS= \
    go install "github.com/versity/versitygw/cmd/versitygw@$S3_VERSITYGW_VERSION")
  echo "$S3_VERSITYGW_VERSION" >"$stamp"
}

# _s3_curl METHOD PATH -> prints the HTTP status code (000 when nothing answers)
_s3_curl() {
  local m=(-X "$1")
  [[ $1 == HEAD ]] && m=(--head)
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${m[@]}" \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS:$S3_SECRET" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    "$S3_ENDPOINT$2" 2>/dev/null || true
}

s3_start() {
  local d i code pid
  d="$SVC_DIR/s3"
  mkdir -p "$d/data"
  if svc_port_open 7070; then
    svc_log "s3: port 7070 is already in use by a process we did not start"
    return 1
  fi
  setsid "$(_s3_bin)" --access "$S3_ACCESS" --secret "$S3_SECRET" --region "$S3_REGION" \
    --port 127.0.0.1:7070 posix "$d/data" </dev/null >>"$d/log" 2>&1 &
  pid=$!
  echo "$pid" >"$d/pid"
  for ((i = 0; i < 600; i++)); do
    code=$(_s3_curl GET /)
    [[ $code == 200 ]] && break
    svc_alive "$pid" || { svc_log "s3: versitygw exited"; return 1; }
    sleep 0.2
  done
  code=$(_s3_curl HEAD "/$S3_BUCKET")
  if [[ $code != 200 ]]; then
    code=$(_s3_curl PUT "/$S3_BUCKET")
    [[ $code == 200 || $code == 409 ]] || { svc_log "s3: creating bucket $S3_BUCKET: HTTP $code"; return 1; }
  fi
}

s3_healthy() {
  [[ $(_s3_curl HEAD "/$S3_BUCKET") == 200 ]]
}

s3_env() {
  cat <<EOF
export TIDEMARK_S3_ENDPOINT=$S3_ENDPOINT
export TIDEMARK_S3_ACCESS_KEY=$S3_ACCESS
export TIDEMARK_S3_SECRET_KEY=$S3_SECRET
export TIDEMARK_S3_REGION=$S3_REGION
export TIDEMARK_S3_BUCKET=$S3_BUCKET
EOF
}
