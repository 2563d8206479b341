<?php

// What happens downstream of the rows phab-scim writes, asked of the host's
// own code: its queued tasks, its fulltext index and its typeaheads. Runs
// inside a Phorge or Phabricator checkout named by PHABRICATOR_ROOT, with the
// configuration selected by PHABRICATOR_ENV (tests/php/integration.sh).
//
//   task-mark                 print the highest task id so far (active or
//                             archived; 0 when none)
//   worker-state              print "<runnable> <failures> <archived>": the
//                             active tasks that never failed, the failure
//                             count of all active tasks, the archived tasks
//   runnable-ids              the ids of the active tasks that never failed,
//                             oldest first, at most 200
//   tasks <mark>              list the tasks queued after <mark> as
//                             "<id> <class> <state> <failures> <object>",
//                             state one of active, success, failed,
//                             cancelled; exit 1 when any failed, or is still
//                             active with a failure count
//   find <kind> <query> <phid>
//                             exit 0 when the host finds <phid> for <query>,
//                             1 when it does not; <kind> is one of
//                             user-typeahead  PhabricatorPeopleDatasource
//                             project-typeahead PhabricatorProjectDatasource
//                             user-search     Conduit user.search, query
//                             project-search  Conduit project.search, query
//                             fulltext        PhabricatorSearchDocumentQuery
//                                             (global search)

$root = getenv('PHABRICATOR_ROOT');
if (!$root) {
  fwrite(STDERR, "PHABRICATOR_ROOT is not set\n");
  exit(2);
}

require_once $root.'/scripts/init/init-script.php';

$args = array_slice($argv, 1);
$command = array_shift($args);

switch ($command) {
  case 'task-mark':
    echo downstream_task_mark(), "\n";
    exit(0);
  case 'worker-state':
    echo implode(' ', downstream_worker_state()), "\n";
    exit(0);
  case 'runnable-ids':
    $active = new PhabricatorWorkerActiveTask();
    foreach (queryfx_all(
      $active->establishConnection('r'),
      'SELECT id FROM %T WHERE failureCount = 0 ORDER BY id LIMIT 200',
      $active->getTableName()) as $row) {
      echo $row['id'], "\n";
    }
    exit(0);
  case 'tasks':
    exit(downstream_tasks((int)$args[0]));
  case 'find':
    exit(downstream_find($args[0], $args[1], $args[2]));
}

fwrite(STDERR, "unknown command\n");
exit(2);

function downstream_task_mark() {
  $active = new PhabricatorWorkerActiveTask();
  $archive = new PhabricatorWorkerArchiveTask();
  $a = queryfx_one(
    $active->establishConnection('r'),
    'SELECT MAX(id) m FROM %T',
    $active->getTableName());
  $b = queryfx_one(
    $archive->establishConnection('r'),
    'SELECT MAX(id) m FROM %T',
    $archive->getTableName());
  return max((int)$a['m'], (int)$b['m']);
}

function downstream_worker_state() {
  $active = new PhabricatorWorkerActiveTask();
  $archive = new PhabricatorWorkerArchiveTask();
  $a = queryfx_one(
    $active->establishConnection('r'),
    'SELECT SUM(failureCount = 0) runnable,
      COALESCE(SUM(failureCount), 0) failures FROM %T',
    $active->getTableName());
  $b = queryfx_one(
    $archive->establishConnection('r'),
    'SELECT COUNT(*) n FROM %T',
    $archive->getTableName());
  return array((int)$a['runnable'], (int)$a['failures'], (int)$b['n']);
}

function downstream_tasks($mark) {
  $active = new PhabricatorWorkerActiveTask();
  $archive = new PhabricatorWorkerArchiveTask();
  $rows = array();
  foreach (queryfx_all(
    $active->establishConnection('r'),
    'SELECT id, taskClass, failureCount, objectPHID FROM %T WHERE id > %d',
    $active->getTableName(),
    $mark) as $row) {
    $rows[$row['id']] = array(
      $row['taskClass'],
      'active',
      (int)$row['failureCount'],
      $row['objectPHID'],
    );
  }
  $states = array(
    PhabricatorWorkerArchiveTask::RESULT_SUCCESS => 'success',
    PhabricatorWorkerArchiveTask::RESULT_FAILURE => 'failed',
    PhabricatorWorkerArchiveTask::RESULT_CANCELLED => 'cancelled',
  );
  foreach (queryfx_all(
    $archive->establishConnection('r'),
    'SELECT id, taskClass, result, failureCount, objectPHID FROM %T
      WHERE id > %d',
    $archive->getTableName(),
    $mark) as $row) {
    $rows[$row['id']] = array(
      $row['taskClass'],
      idx($states, (int)$row['result'], 'result-'.$row['result']),
      (int)$row['failureCount'],
      $row['objectPHID'],
    );
  }
  ksort($rows);

  $bad = 0;
  foreach ($rows as $id => $row) {
    list($class, $state, $failures, $object) = $row;
    echo $id, ' ', $class, ' ', $state, ' ', $failures, ' ',
      ($object === null ? '-' : $object), "\n";
    if ($state !== 'success' || $failures > 0) {
      $bad++;
    }
  }
  return $bad ? 1 : 0;
}

function downstream_find($kind, $query, $phid) {
  $viewer = PhabricatorUser::getOmnipotentUser();
  $found = array();
  switch ($kind) {
    case 'user-typeahead':
    case 'project-typeahead':
      $source = ($kind === 'user-typeahead')
        ? new PhabricatorPeopleDatasource()
        : new PhabricatorProjectDatasource();
      $source
        ->setViewer($viewer)
        ->setQuery($query)
        ->setRawQuery($query)
        ->setLimit(100);
      foreach ($source->loadResults() as $result) {
        $found[] = $result->getPHID();
      }
      break;
    case 'user-search':
    case 'project-search':
      $method = ($kind === 'user-search') ? 'user.search' : 'project.search';
      $result = id(new ConduitCall(
        $method,
        array('constraints' => array('query' => $query))))
        ->setUser($viewer)
        ->execute();
      foreach ($result['data'] as $item) {
        $found[] = $item['phid'];
      }
      break;
    case 'fulltext':
      $saved = id(new PhabricatorSavedQuery())
        ->setEngineClassName('PhabricatorSearchApplicationSearchEngine')
        ->setParameter('query', $query);
      $handles = id(new PhabricatorSearchDocumentQuery())
        ->setViewer($viewer)
        ->withSavedQuery($saved)
        ->setLimit(100)
        ->execute();
      foreach ($handles as $handle) {
        $found[] = $handle->getPHID();
      }
      break;
    default:
      fwrite(STDERR, "unknown kind {$kind}\n");
      return 2;
  }

  if (in_array($phid, $found, true)) {
    return 0;
  }
  fwrite(
    STDERR,
    "{$kind} '{$query}' found ".count($found).' object(s), not '.$phid.
    ($found ? ': '.implode(' ', $found) : '')."\n");
  return 1;
}
