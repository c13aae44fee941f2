# shellcheck shell=bash
# One nginx (Debian nginx-light) with five sites:
#   git      read-only smart HTTP for the bare repos in GIT_ROOT (fcgiwrap + git http-backend)
#   static   plain files from HTTP_ROOT (Range, HEAD, ETag come with nginx)
#   dav      an HTTP raw repository: GET/HEAD/PUT/DELETE under Basic auth (ngx_http_dav_module)
#   s3-tls   HTTPS with the test CA's server certificate in front of Ceph RGW (S3 over TLS, private CA)
#   s3-mtls  the same, but the TLS handshake asks for a client certificate signed by the test CA
# start_nginx GIT_PORT HTTP_PORT DAV_PORT DAV_HTPASSWD S3_TLS_PORT S3_MTLS_PORT RGW_PORT
start_nginx() {
  local git_port=$1 http_port=$2 dav_port=$3 dav_htpasswd=$4 s3_tls_port=$5 s3_mtls_port=$6 rgw_port=$7
  local certs=$STATE/certs
  local dir=$STATE/nginx
  mkdir -p "$dir/tmp" "$STATE/git-root" "$STATE/http-root" "$STATE/dav-root"
  nginx -V 2>&1 | grep -q -- --with-http_dav_module ||
    die "this nginx has no WebDAV module (nginx -V); the HTTP raw repository needs it"

  local sock=$dir/fcgiwrap.sock
  rm -f "$sock"
  spawn fcgiwrap "$STATE/logs/fcgiwrap.log" fcgiwrap -c 4 -s "unix:$sock"
  local fcgi_pid=$SPAWNED_PID

  local backend user_line=""
  backend="$(git --exec-path)/git-http-backend"
  [ "$(id -u)" = 0 ] && user_line="user root;"
  cat >"$dir/nginx.conf" <<CONF
$user_line
worker_processes 2;
pid $dir/nginx.pid;
error_log $STATE/logs/nginx-error.log warn;
daemon off;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log $STATE/logs/nginx-access.log;
  sendfile on;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;

  server {
    listen 127.0.0.1:$git_port;
    # Read-only: no pushes, whatever the repository's own config says.
    location ~ /git-receive-pack\$ { return 403; }
    location / {
      if (\$arg_service = git-receive-pack) { return 403; }
      client_max_body_size 0;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $backend;
      fastcgi_param GIT_PROJECT_ROOT $STATE/git-root;
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param GIT_CONFIG_COUNT 1;
      fastcgi_param GIT_CONFIG_KEY_0 safe.directory;
      fastcgi_param GIT_CONFIG_VALUE_0 *;
      fastcgi_param PATH_INFO \$uri;
      fastcgi_param REMOTE_USER "";
      fastcgi_pass unix:$sock;
    }
  }

  server {
    listen 127.0.0.1:$http_port;
    root $STATE/http-root;
    autoindex on;
  }

  server {
    listen 127.0.0.1:$dav_port;
    root $STATE/dav-root;
    client_max_body_size 0;
    location / {
      auth_basic "airgap raw repository";
      auth_basic_user_file $dav_htpasswd;
      dav_methods PUT DELETE MKCOL;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      autoindex on;
    }
  }

  # S3 behind a TLS-terminating proxy, as sites put RGW or MinIO behind nginx. SigV4 signs the Host
  # header, so RGW must see exactly what the client sent (host:port of this listener); uploads and
  # downloads stream through unbuffered, of any size.
  upstream rgw { server 127.0.0.1:$rgw_port; keepalive 8; }
  server {
    listen 127.0.0.1:$s3_tls_port ssl;
    ssl_certificate $certs/server.crt;
    ssl_certificate_key $certs/server.key;
    include $dir/s3-proxy.conf;
  }
  server {
    listen 127.0.0.1:$s3_mtls_port ssl;
    ssl_certificate $certs/server.crt;
    ssl_certificate_key $certs/server.key;
    ssl_client_certificate $certs/ca.crt;
    ssl_verify_client on;
    include $dir/s3-proxy.conf;
  }
}
CONF
  cat >"$dir/s3-proxy.conf" <<CONF
ssl_protocols TLSv1.2 TLSv1.3;
client_max_body_size 0;
proxy_request_buffering off;
proxy_buffering off;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host \$http_host;
proxy_set_header X-Forwarded-Proto https;
location / { proxy_pass http://rgw; }
CONF
  nginx -t -q -c "$dir/nginx.conf" -p "$dir" >>"$STATE/logs/nginx-error.log" 2>&1 ||
    { tail -5 "$STATE/logs/nginx-error.log" >&2; die "nginx rejected its config"; }
  spawn nginx "$STATE/logs/nginx.out" nginx -c "$dir/nginx.conf" -p "$dir"
  NGINX_PIDS="$SPAWNED_PID $fcgi_pid"
}

wait_nginx() { # GIT_PORT HTTP_PORT DAV_PORT
  # An unknown repository answers 404 from git http-backend itself, which proves the whole chain.
  wait_http "http://127.0.0.1:$1/none.git/info/refs?service=git-upload-pack" 10 "404" "$NGINX_PIDS" &&
    wait_http "http://127.0.0.1:$2/" 10 "200" "$NGINX_PIDS" &&
    wait_http "http://127.0.0.1:$3/" 10 "401" "$NGINX_PIDS" ||
    { tail -20 "$STATE/logs/nginx-error.log" "$STATE/logs/fcgiwrap.log" >&2; return 1; }
}

# wait_s3_tls S3_TLS_PORT S3_MTLS_PORT: both TLS fronts reach RGW (an anonymous GET / answers from RGW
# itself). The mTLS one is probed with the client certificate, and must refuse a client without one.
wait_s3_tls() {
  local c=$STATE/certs
  wait_http "https://127.0.0.1:$1/" 20 "200 403" "$NGINX_PIDS" -- --cacert "$c/ca.crt" &&
    wait_http "https://127.0.0.1:$2/" 20 "200 403" "$NGINX_PIDS" -- --cacert "$c/ca.crt" \
      --cert "$c/client.crt" --key "$c/client.key" &&
    wait_http "https://127.0.0.1:$2/" 5 "400" "$NGINX_PIDS" -- --cacert "$c/ca.crt" ||
    { tail -20 "$STATE/logs/nginx-error.log" >&2; return 1; }
}
