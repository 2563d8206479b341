<?php

// snapshot.php NAMESPACE OUT.json [--before]
//
// Dumps every row of every table of the storage namespace (all NAMESPACE_*
// databases) as JSON: table "db.table" (the namespace prefix dropped, so two
// namespaces compare) -> primary key -> row. No table is skipped here; what
// the comparison ignores is decided once, in compare.php.
//
// With --before (the snapshot before an operation) it returns only once a
// new second has begun, and records that second as the operation's start:
// Phabricator's timestamps have one-second resolution, so this keeps every
// write of the operation later than every write before it.

if (count($argv) < 3 || count($argv) > 4) {
  fwrite(STDERR, "usage: snapshot.php NAMESPACE OUT.json [--before]\n");
  exit(2);
}
$ns = $argv[1];
$out = $argv[2];
$before = (isset($argv[3]) && $argv[3] === '--before');

$conn = mysqli_connect(
  getenv('mysql_host') ?: '127.0.0.1',
  getenv('mysql_user') ?: 'root',
  (string)getenv('mysql_pass'),
  '',
  (int)(getenv('mysql_port') ?: 3306));
mysqli_set_charset($conn, 'utf8mb4');

$time = time();
$like = str_replace('_', '\\_', $ns).'\\_%';

// Primary keys of every table of the namespace in one query.
$pks = array();
$res = mysqli_query(
  $conn,
  "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
    WHERE TABLE_SCHEMA LIKE '{$like}' AND CONSTRAINT_NAME = 'PRIMARY'
    ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION");
while ($row = mysqli_fetch_row($res)) {
  $pks[$row[0].'.'.$row[1]][] = $row[2];
}

$tables = array();
$res = mysqli_query(
  $conn,
  "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
    WHERE TABLE_SCHEMA LIKE '{$like}' AND TABLE_TYPE = 'BASE TABLE'
    ORDER BY TABLE_SCHEMA, TABLE_NAME");
$all = mysqli_fetch_all($res);
foreach ($all as $t) {
  list($db, $table) = $t;
  $name = substr($db, strlen($ns) + 1).'.'.$table;
  $pk = isset($pks[$db.'.'.$table]) ? $pks[$db.'.'.$table] : array();
  $rows = array();
  $r = mysqli_query($conn, "SELECT * FROM `{$db}`.`{$table}`");
  while ($row = mysqli_fetch_assoc($r)) {
    foreach ($row as $k => $v) {
      if ($v !== null && !mb_check_encoding($v, 'UTF-8')) {
        $row[$k] = '<binary '.strlen($v).' bytes, md5 '.md5($v).'>';
      }
    }
    if ($pk) {
      $key = array();
      foreach ($pk as $col) {
        $key[] = $row[$col];
      }
      $key = implode("\x1f", $key);
    } else {
      $key = md5(json_encode($row));
      $n = 0;
      while (isset($rows[$key.'#'.$n])) {
        $n++;
      }
      $key = $key.'#'.$n;
    }
    $rows[$key] = $row;
  }
  if ($rows) {
    $tables[$name] = $rows;
  }
}

if ($before) {
  $time = time() + 1;
  time_sleep_until($time + 0.001);
}

file_put_contents($out, json_encode(
  array('namespace' => $ns, 'time' => $time, 'tables' => $tables),
  JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE));
