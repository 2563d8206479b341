# Shell helpers every host test uses (sourced by tests/php/host_lib.sh and
# tests/php/differential_lib.sh). Reads mysql_host, mysql_port, mysql_user and
# mysql_pass from the environment.

# sql <query>: rows, tab-separated.
sql() {
  php -r '
    $c = mysqli_connect(getenv("mysql_host"), getenv("mysql_user"),
      getenv("mysql_pass"), "", (int)getenv("mysql_port"));
    $r = mysqli_query($c, $argv[1]);
    if ($r instanceof mysqli_result) {
      while ($row = mysqli_fetch_row($r)) { echo implode("\t", $row), "\n"; }
    }' "$1"
}

free_port() {
  php -r '$s = stream_socket_server("tcp://127.0.0.1:0");
    $n = stream_socket_get_name($s, false);
    echo substr($n, strrpos($n, ":") + 1);'
}
