<?php

// compare.php HOST MANIFEST.json DIFFERENCES.md
//
// Compares, operation by operation, the rows the host's own code changed
// (snapshots of the host-side namespace before and after) with the rows
// phab-scim changed (the same around its namespace), after masking what is
// legitimately different; then checks the remaining differences against the
// "Differential suite" table of DIFFERENCES.md for HOST (phorge or
// phabricator). Exit 1 when a difference is not listed there, or a listed
// one did not occur.
//
// MANIFEST.json: [{"op": NAME, "host": [BEFORE, AFTER], "scim": [BEFORE,
// AFTER]}, ...] in the order the operations ran.
//
// What "changed" means: a row (by primary key) that is new, gone, or has a
// different value in some column between the two snapshots; found by diffing
// every table of the namespace, no table list.
//
// Masking rules (the only ones; each names why the value may legitimately
// differ between two namespaces that did the same thing):
//
//  1. PHIDs are random: every PHID is replaced by a label naming the object
//     (PHID{@alice}, PHID{#Design Team}, PHID{email:a@example.com},
//     PHID{xact:@alice:user.disable:1}, ...), assigned once per side and
//     kept for the whole run, so references between rows still compare.
//  2. Auto-increment and counter ids depend on everything written before:
//     the `id` column is dropped; `userID`/`projectID` become the label of
//     the user/project with that id; a worker task's `dataID` becomes the
//     task's data (worker_taskdata is compared through its tasks);
//     lisk_counter values become <counter>.
//  3. Timestamps are read relative to the operation: <now> inside its time
//     window, <now+Nh> after it, <earlier> before it (snapshot.php --before
//     starts each operation in a new second, so the window holds only its
//     writes). An update that only moves a timestamp still counts as an
//     update of that column.
//  4. Random secrets and keys are generated per write: session keys, API
//     tokens, one-time codes, account secrets, certificates, verification
//     codes, mail keys, request ids, token hashes, `core.groupID` and
//     `registrationKey` inside JSON become <random>.
//  5. Values derived from PHIDs: project.projectPath/projectPathKey (prefixes
//     of digests of the project PHIDs) become <pathkey>.
//  6. A row deleted and re-inserted with the same content (a rewrite, e.g.
//     name tokens) is no change.
//  7. The PHID lists of a `core:edge` transaction (oldValue, newValue) are
//     sets: PhabricatorEdgeChangeRecord keys them by PHID, and their order
//     is that of an edge query whose ties (edges of the same second) fall
//     either way. They are sorted.
//  8. Not writes of any operation: scim.scim_instance (each service
//     instance's heartbeat, every 15 s) and scim.scim_token.dateLastUsed
//     (stamped off the request path, at most once a minute).
//
// Everything else is compared, including the host's mail, Herald and search
// rows, request context of user_log rows, and phab-scim's own tables.

if (count($argv) !== 4) {
  fwrite(STDERR, "usage: compare.php HOST MANIFEST.json DIFFERENCES.md\n");
  exit(2);
}
list(, $host_name, $manifest_file, $listing_file) = $argv;

const SKIP_TABLES = array('scim.scim_instance', 'worker.worker_taskdata');
const SKIP_COLUMNS = array('scim.scim_token.dateLastUsed');
const RANDOM_COLUMNS = array(
  'user.user.conduitCertificate',
  'user.user.accountSecret',
  'user.user_email.verificationCode',
  'user.user_externalaccount.accountSecret',
  'user.phabricator_session.sessionKey',
  'conduit.conduit_token.token',
  'auth.auth_temporarytoken.tokenCode',
  'project.project.mailKey',
  'scim.scim_event.requestID',
  'scim.scim_token.tokenHash',
);
const DERIVED_COLUMNS = array(
  'project.project.projectPath',
  'project.project.projectPathKey',
);
const RANDOM_JSON_KEYS = array('core.groupID', 'registrationKey');
// Columns that name a row across both sides, by table (after the database);
// a table not listed is matched by `phid`, else by its whole masked row.
const IDENTITY = array(
  'edge' => array('src', 'type', 'dst'),
  'worker_activetask' => array('taskClass', 'objectPHID'),
  'worker_archivetask' => array('taskClass', 'objectPHID'),
  'user_log' => array('userPHID', 'action'),
  'lisk_counter' => array('counterName'),
  'project_slug' => array('slug'),
  'phabricator_session' => array('userPHID', 'type'),
  'conduit_token' => array('objectPHID', 'tokenType'),
  'auth_temporarytoken' => array('tokenResource', 'tokenType'),
  'system_destructionlog' => array('objectPHID'),
  'scim_user' => array('userPHID'),
  'scim_group' => array('projectPHID'),
  'user_nametoken' => array('userID', 'token'),
  'project_datasourcetoken' => array('projectID', 'token'),
);

function is_time_column($name) {
  return (bool)preg_match(
    '/^(date[A-Z]\w*|epoch|\w*(Expires|Time|TTL|At)|cacheCreated)$/',
    $name);
}

final class Side {
  public $name;
  public $labels = array();
  public $counters = array();

  const DEFINING = array(
    'user.user',
    'project.project',
    'user.user_email',
    'user.user_externalaccount',
    'user.user_externalaccountidentifier',
    'auth.auth_providerconfig',
  );

  public function __construct($name) {
    $this->name = $name;
  }

  /** A stable name for $phid from the rows that define it. */
  public function label($phid, array $snaps) {
    if (isset($this->labels[$phid])) {
      return $this->labels[$phid];
    }
    $type = substr($phid, 5, 4);
    $label = null;
    // The table that defines the object first: other tables (Herald's saved
    // headers, say) also have a `phid` column holding an object's PHID.
    foreach ($snaps as $snap) {
      foreach (self::DEFINING as $table) {
        if (!isset($snap['tables'][$table])) {
          continue;
        }
        foreach ($snap['tables'][$table] as $row) {
          if ($row['phid'] === $phid) {
            $label = $this->labelFor($table, $row, $snaps);
            break 3;
          }
        }
      }
    }
    foreach ($label === null ? $snaps : array() as $snap) {
      foreach ($snap['tables'] as $table => $rows) {
        foreach ($rows as $row) {
          if (!isset($row['phid']) || $row['phid'] !== $phid) {
            continue;
          }
          $label = $this->labelFor($table, $row, $snaps);
          break 3;
        }
      }
    }
    if ($label === null) {
      $label = $this->next($type);
    }
    $this->labels[$phid] = 'PHID{'.$label.'}';
    return $this->labels[$phid];
  }

  private function next($key) {
    $n = isset($this->counters[$key]) ? $this->counters[$key] + 1 : 1;
    $this->counters[$key] = $n;
    return $key.':'.$n;
  }

  private function labelFor($table, array $row, array $snaps) {
    switch ($table) {
      case 'user.user':
        return '@'.$row['userName'];
      case 'project.project':
        return '#'.$row['name'];
      case 'user.user_email':
        return 'email:'.$row['address'];
      case 'user.user_externalaccount':
        return 'xacct:'.$row['accountType'].':'.$row['username'];
      case 'user.user_externalaccountidentifier':
        return 'xid:'.$row['identifierRaw'];
      case 'auth.auth_providerconfig':
        return 'provider:'.$row['providerType'].':'.$row['providerDomain'];
    }
    if (preg_match('/_transaction$/', $table)) {
      $object = substr($this->label($row['objectPHID'], $snaps), 5, -1);
      return $this->next('xact:'.$object.':'.$row['transactionType']);
    }
    return $this->next(substr($row['phid'], 5, 4));
  }
}

/** Masks one row of $table (rules 1 to 5); $window = [start, end]. $old: the
 * row as it was before the operation (its times are <earlier> or later, never
 * <now>: snapshots have one-second resolution). */
function mask_row(Side $side, $table, array $row, array $snaps, array $window,
  $old = false) {
  $short = substr($table, strpos($table, '.') + 1);
  $out = array();
  foreach ($row as $col => $value) {
    $full = $table.'.'.$col;
    if ($col === 'id' || in_array($full, SKIP_COLUMNS, true)) {
      continue;
    }
    if ($value === null) {
      $out[$col] = null;
      continue;
    }
    if (in_array($full, RANDOM_COLUMNS, true)) {
      $out[$col] = '<random>';
      continue;
    }
    if (in_array($full, DERIVED_COLUMNS, true)) {
      $out[$col] = '<pathkey>';
      continue;
    }
    if ($col === 'userID' || $col === 'projectID') {
      $ref = ($col === 'userID') ? 'user.user' : 'project.project';
      $out[$col] = '<id '.$value.'>';
      foreach ($snaps as $snap) {
        if (isset($snap['tables'][$ref][$value])) {
          $out[$col] = $side->label($snap['tables'][$ref][$value]['phid'], $snaps);
          break;
        }
      }
      continue;
    }
    if ($col === 'dataID' && preg_match('/^worker_\w+task$/', $short)) {
      $out[$col] = '<no data>';
      foreach ($snaps as $snap) {
        if (isset($snap['tables']['worker.worker_taskdata'][$value])) {
          $out[$col] = mask_value($side,
            $snap['tables']['worker.worker_taskdata'][$value]['data'], $snaps);
          break;
        }
      }
      continue;
    }
    if ($table === 'worker.lisk_counter' && $col === 'counterValue') {
      $out[$col] = '<counter>';
      continue;
    }
    if (is_time_column($col) && is_numeric($value) && $value > 100000000) {
      $v = (int)$value;
      if (!$old && $v >= $window[0] && $v <= $window[1]) {
        $out[$col] = '<now>';
      } else if ($v > $window[1]) {
        $out[$col] = '<now+'.round(($v - $window[1]) / 3600).'h>';
      } else {
        $out[$col] = '<earlier>';
      }
      continue;
    }
    $out[$col] = mask_value($side, $value, $snaps);
  }
  if (preg_match('/_transaction$/', $table)
    && idx_or_null($row, 'transactionType') === 'core:edge') {
    foreach (array('oldValue', 'newValue') as $col) {
      $list = isset($out[$col]) ? json_decode($out[$col], true) : null;
      if (is_array($list) && array_is_list($list)) {
        sort($list);
        $out[$col] = json_encode($list, JSON_UNESCAPED_SLASHES);
      }
    }
  }
  return $out;
}

function idx_or_null(array $row, $key) {
  return array_key_exists($key, $row) ? $row[$key] : null;
}

function mask_value(Side $side, $value, array $snaps) {
  $value = (string)$value;
  foreach (RANDOM_JSON_KEYS as $key) {
    $value = preg_replace(
      '/"'.preg_quote($key, '/').'":"[^"]*"/',
      '"'.$key.'":"<random>"',
      $value);
  }
  return preg_replace_callback(
    '/PHID-[A-Z]{4}-(?:[A-Z]{4}-)?[a-z0-9]{15,20}/',
    function ($m) use ($side, $snaps) {
      return $side->label($m[0], $snaps);
    },
    $value);
}

/** The masked changes of one side in one operation. */
function side_changes(Side $side, array $before, array $after) {
  $snaps = array($after, $before);
  $window = array($before['time'], $after['time']);
  $tables = array_unique(array_merge(
    array_keys($before['tables']),
    array_keys($after['tables'])));
  sort($tables);
  $changes = array();
  foreach ($tables as $table) {
    if (in_array($table, SKIP_TABLES, true)) {
      continue;
    }
    $b = isset($before['tables'][$table]) ? $before['tables'][$table] : array();
    $a = isset($after['tables'][$table]) ? $after['tables'][$table] : array();
    $inserts = array();
    $deletes = array();
    foreach ($a as $key => $row) {
      if (!isset($b[$key])) {
        $inserts[] = mask_row($side, $table, $row, $snaps, $window);
      } else if ($b[$key] != $row) {
        $old = mask_row($side, $table, $b[$key], $snaps, $window, true);
        $new = mask_row($side, $table, $row, $snaps, $window);
        $cols = array();
        foreach ($row as $col => $value) {
          if ($b[$key][$col] !== $value && array_key_exists($col, $new)) {
            $cols[$col] = array($old[$col], $new[$col]);
          }
        }
        if ($cols) {
          ksort($cols);
          $changes[] = array($table, 'update', identity($table, $new), $cols);
        }
      }
    }
    foreach ($b as $key => $row) {
      if (!isset($a[$key])) {
        $deletes[] = mask_row($side, $table, $row, $snaps, $window, true);
      }
    }
    // Rule 6: a delete and an insert of the same masked row is a rewrite.
    foreach ($deletes as $i => $row) {
      $j = array_search($row, $inserts, true);
      if ($j !== false) {
        unset($deletes[$i], $inserts[$j]);
      }
    }
    foreach ($inserts as $row) {
      $changes[] = array($table, 'insert', identity($table, $row), $row);
    }
    foreach ($deletes as $row) {
      $changes[] = array($table, 'delete', identity($table, $row), $row);
    }
  }
  return $changes;
}

function identity($table, array $row) {
  $short = substr($table, strpos($table, '.') + 1);
  if (isset(IDENTITY[$short])) {
    $cols = IDENTITY[$short];
    if (in_array('objectPHID', $cols, true)
      && array_key_exists('dataID', $row) && $row['objectPHID'] === null) {
      // Tasks about no object (identity changes) are told apart by data.
      $cols[] = 'dataID';
    }
  } else if (array_key_exists('phid', $row)) {
    $cols = array('phid');
  } else {
    $cols = array_keys($row);
  }
  $id = array();
  foreach ($cols as $col) {
    $id[] = $col.'='.json_encode(
      array_key_exists($col, $row) ? $row[$col] : null,
      JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
  }
  return implode(', ', $id);
}

function show($value) {
  return json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
}

/** The differences of one operation: list of [table, kind, identity, what, host, scim]. */
function compare_changes(array $host, array $scim) {
  $groups = array();
  foreach (array('host' => $host, 'scim' => $scim) as $who => $changes) {
    foreach ($changes as $c) {
      $groups[$c[0]."\0".$c[1]."\0".$c[2]][$who][] = $c[3];
    }
  }
  ksort($groups);
  $out = array();
  foreach ($groups as $key => $sides) {
    list($table, $kind, $identity) = explode("\0", $key);
    $h = isset($sides['host']) ? $sides['host'] : array();
    $s = isset($sides['scim']) ? $sides['scim'] : array();
    $sort = function ($x, $y) { return strcmp(show($x), show($y)); };
    usort($h, $sort);
    usort($s, $sort);
    $n = max(count($h), count($s));
    for ($i = 0; $i < $n; $i++) {
      if (!isset($s[$i])) {
        $out[] = array($table, $kind, $identity, 'host only', $h[$i], null);
        continue;
      }
      if (!isset($h[$i])) {
        $out[] = array($table, $kind, $identity, 'phab-scim only', null, $s[$i]);
        continue;
      }
      $cols = array_unique(array_merge(array_keys($h[$i]), array_keys($s[$i])));
      sort($cols);
      foreach ($cols as $col) {
        $hv = array_key_exists($col, $h[$i]) ? $h[$i][$col] : '<unchanged>';
        $sv = array_key_exists($col, $s[$i]) ? $s[$i][$col] : '<unchanged>';
        if ($hv === $sv) {
          continue;
        }
        $paths = json_paths($hv, $sv);
        if (!$paths) {
          $out[] = array($table, $kind, $identity, 'column '.$col, $hv, $sv);
        }
        foreach ($paths as $path => $values) {
          $out[] = array($table, $kind, $identity, 'column '.$col.' '.$path,
            $values[0], $values[1]);
        }
      }
    }
  }
  return $out;
}

function any_match(array $globs, $value) {
  foreach ($globs as $glob) {
    if (fnmatch($glob, $value)) {
      return true;
    }
  }
  return false;
}

/** Where two JSON documents differ, as path => [a, b] (keys joined with
 * "."); empty when either is not a JSON object. */
function json_paths($a, $b, $prefix = '') {
  if ($prefix === '') {
    $a = is_string($a) ? json_decode($a, true) : null;
    $b = is_string($b) ? json_decode($b, true) : null;
    if (!is_array($a) || !is_array($b) || array_is_list($a) || array_is_list($b)) {
      return array();
    }
  }
  $out = array();
  foreach (array_unique(array_merge(array_keys($a), array_keys($b))) as $key) {
    $path = $prefix.$key;
    $x = array_key_exists($key, $a) ? $a[$key] : '<absent>';
    $y = array_key_exists($key, $b) ? $b[$key] : '<absent>';
    if ($x === $y) {
      continue;
    }
    if (is_array($x) && is_array($y) && $x && $y
      && !array_is_list($x) && !array_is_list($y)) {
      $out += json_paths($x, $y, $path.'.');
    } else {
      $out[$path] = array($x, $y);
    }
  }
  return $out;
}

/** Rows of the "Differential suite" table: [line, host, op, table, change, what]. */
function read_listing($file) {
  $entries = array();
  $in = false;
  foreach (file($file) as $n => $line) {
    if (preg_match('/^## /', $line)) {
      $in = (trim($line) === '## Differential suite');
      continue;
    }
    if (!$in || !preg_match('/^\|(.*)\|\s*$/', $line, $m)) {
      continue;
    }
    $cells = array_map('trim', explode('|', $m[1]));
    if (count($cells) < 6 || $cells[0] === 'host' || preg_match('/^-+$/', $cells[0])) {
      continue;
    }
    $what = trim($cells[4], '`');
    $where = '*';
    if (preg_match('/^(.*?)\s+where\s+(.*)$/', $what, $w)) {
      list(, $what, $where) = $w;
    }
    $list = function ($cell) {
      return array_map('trim', explode(',', str_replace('`', '', $cell)));
    };
    $entries[] = array(
      'line' => $n + 1,
      'host' => $cells[0],
      'op' => $list($cells[1]),
      'table' => $list($cells[2]),
      'change' => $list($cells[3]),
      'what' => $list($what),
      'where' => $where,
      'reason' => $cells[5],
      'seen' => 0,
    );
  }
  return $entries;
}

$manifest = json_decode(file_get_contents($manifest_file), true);
$listing = read_listing($listing_file);
$host_side = new Side('host');
$scim_side = new Side('phab-scim');
$load = function ($file) {
  return json_decode(file_get_contents($file), true);
};

$unlisted = 0;
$rows = 0;
$ops = 0;
foreach ($manifest as $entry) {
  $ops++;
  $h = side_changes($host_side, $load($entry['host'][0]), $load($entry['host'][1]));
  $s = side_changes($scim_side, $load($entry['scim'][0]), $load($entry['scim'][1]));
  $rows += count($h) + count($s);
  $diffs = compare_changes($h, $s);
  printf("%-24s %3d host rows, %3d phab-scim rows, %d difference(s)\n",
    $entry['op'], count($h), count($s), count($diffs));
  foreach ($diffs as $d) {
    list($table, $kind, $identity, $what, $hv, $sv) = $d;
    $listed = false;
    foreach ($listing as $i => $e) {
      if (($e['host'] === 'both' || $e['host'] === $host_name)
        && any_match($e['op'], $entry['op'])
        && any_match($e['table'], $table)
        && any_match($e['change'], $kind)
        && any_match($e['what'], $what)
        && fnmatch($e['where'], $identity)) {
        $listing[$i]['seen']++;
        $listed = true;
      }
    }
    if ($listed && !getenv('DIFF_VERBOSE')) {
      continue;
    }
    if (!$listed) {
      $unlisted++;
    }
    printf("  %s %s | %s | %s | %s\n      [%s]\n      host:      %s\n      phab-scim: %s\n",
      $listed ? 'listed  ' : 'UNLISTED',
      $entry['op'], $table, $kind, $what, $identity,
      $hv === null ? '-' : show($hv),
      $sv === null ? '-' : show($sv));
    if (!$listed) {
      printf("      entry: | %s | %s | %s | %s | %s | ... |\n",
        $host_name, $entry['op'], $table, $kind, $what);
    }
  }
}

$stale = 0;
foreach (getenv('DIFF_PARTIAL') ? array() : $listing as $e) {
  if (($e['host'] === 'both' || $e['host'] === $host_name) && !$e['seen']) {
    $stale++;
    printf("NO LONGER OCCURS (%s line %d): | %s | %s | %s | %s | %s where %s |\n",
      basename($listing_file), $e['line'], $e['host'], implode(', ', $e['op']),
      implode(', ', $e['table']), implode(', ', $e['change']),
      implode(', ', $e['what']), $e['where']);
  }
}

printf("\ndifferential (%s): %d operations, %d changed rows compared, %d unlisted difference(s), %d listed difference(s) that no longer occur\n",
  $host_name, $ops, $rows, $unlisted, $stale);
exit(($unlisted || $stale) ? 1 : 0);
