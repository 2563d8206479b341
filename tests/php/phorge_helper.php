<?php

// Helper for tests/php/integration.sh: runs inside a Phorge (or
// Phabricator) checkout named by PHABRICATOR_ROOT, with the configuration
// selected by PHABRICATOR_ENV.
//
//   config                      print "<namespace> <library-loaded 0|1>"
//   schema-issues               list Database Status issues; exit 1 if the
//                               scim database has any
//   create-user <name> [bot]    create an account as People > Create does
//   session <name>              print a new web session key ("phsid")
//   session-user <key>          print "<username> <phid> <partial 0|1>" of the web
//                               session with this key (the phsid cookie), as
//                               the host resolves it; nothing if none
//   add-provider <admin> <class> <properties as JSON>
//                               add a login provider as Auth > Add Provider
//                               does (PhabricatorAuthEditController), for a
//                               host whose form fails; print its PHID
//   token-check <token>         verify a SCIM token against scim_token
//   seed-service <user> <admin> write the rows the SCIM service would write
//                               (heartbeat, scim_user, events, drift,
//                               scim_token.dateLastUsed)
//   age-token <id> <days>       move a token's creation date into the past
//   populate <users> <projects> <admin>
//                               an install people made by hand: <users>
//                               accounts named first.last with verified
//                               addresses @corp.example (every 7th with a web
//                               session), <projects> projects with members,
//                               all through the host's own editors
//   seed-plan <admin>           write a staged rollout as the service would:
//                               scim_rollout, operations in each state, plan
//                               entries of every kind (after seed-service)

$root = getenv('PHABRICATOR_ROOT');
if (!$root) {
  fwrite(STDERR, "PHABRICATOR_ROOT is not set\n");
  exit(2);
}

require_once $root.'/scripts/init/init-script.php';

$args = array_slice($argv, 1);
$command = array_shift($args);

switch ($command) {
  case 'config':
    echo PhabricatorEnv::getEnvConfig('storage.default-namespace'), ' ',
      (class_exists('PhabricatorScimPatchList') ? 1 : 0), "\n";
    exit(0);
  case 'schema-issues':
    exit(scim_schema_issues());
  case 'create-user':
    echo scim_create_user($args[0], idx($args, 1) === 'bot')->getPHID(), "\n";
    exit(0);
  case 'session':
    echo scim_new_session($args[0]), "\n";
    exit(0);
  case 'session-user':
    $session_user = id(new PhabricatorAuthSessionEngine())
      ->loadUserForSession(PhabricatorAuthSession::TYPE_WEB, $args[0]);
    if ($session_user) {
      echo $session_user->getUsername(), ' ', $session_user->getPHID(), ' ',
        ($session_user->getSession()->getIsPartial() ? 1 : 0), "\n";
    }
    exit(0);
  case 'add-provider':
    echo scim_add_provider($args[0], $args[1], json_decode($args[2], true)),
      "\n";
    exit(0);
  case 'token-check':
    exit(scim_token_check($args[0]));
  case 'seed-service':
    scim_seed_service($args[0], $args[1]);
    exit(0);
  case 'populate':
    echo scim_populate((int)$args[0], (int)$args[1], $args[2]), "\n";
    exit(0);
  case 'seed-plan':
    scim_seed_plan($args[0]);
    exit(0);
  case 'age-token':
    $token = new PhabricatorScimToken();
    queryfx(
      $token->establishConnection('w'),
      'UPDATE %R SET dateCreated = dateCreated - %d WHERE id = %d',
      $token,
      (int)$args[1] * 86400,
      (int)$args[0]);
    exit(0);
}

fwrite(STDERR, "unknown command\n");
exit(2);

function scim_schema_issues() {
  $query = new PhabricatorConfigSchemaQuery();
  $actual = $query->loadActualSchemata();
  $expect = $query->loadExpectedSchemata();
  $comp_servers = $query->buildComparisonSchemata($expect, $actual);

  $namespace = PhabricatorLiskDAO::getDefaultStorageNamespace();
  $scim_database = $namespace.'_scim';

  $scim_seen = false;
  $scim_issues = 0;
  $other_issues = 0;
  foreach ($comp_servers as $comp) {
    foreach ($comp->getDatabases() as $database_name => $database) {
      $is_scim = ($database_name === $scim_database);
      if ($is_scim) {
        $scim_seen = true;
      }

      $found = array();
      foreach ($database->getLocalIssues() as $issue) {
        $found[] = array('', $issue);
      }
      foreach ($database->getTables() as $table_name => $table) {
        foreach ($table->getLocalIssues() as $issue) {
          $found[] = array($table_name, $issue);
        }
        foreach ($table->getColumns() as $column_name => $column) {
          foreach ($column->getLocalIssues() as $issue) {
            $where = "{$table_name}.{$column_name}";
            if ($is_scim) {
              $where .= scim_describe_column(
                $expect,
                $actual,
                $database_name,
                $table_name,
                $column_name);
            }
            $found[] = array($where, $issue);
          }
        }
        foreach ($table->getKeys() as $key_name => $key) {
          foreach ($key->getLocalIssues() as $issue) {
            $found[] = array("{$table_name} key {$key_name}", $issue);
          }
        }
      }

      foreach ($found as $item) {
        list($where, $issue) = $item;
        $status = PhabricatorConfigStorageSchema::getIssueStatus($issue);
        printf(
          "%s %s %s: %s (%s)\n",
          $is_scim ? 'SCIM' : 'core',
          $database_name,
          $where,
          PhabricatorConfigStorageSchema::getIssueName($issue),
          $status);
        if ($is_scim) {
          $scim_issues++;
        } else {
          $other_issues++;
        }
      }
    }
  }

  if (!$scim_seen) {
    printf("database %s was not inspected (no db patch?)\n", $scim_database);
    return 1;
  }

  printf(
    "schema: %d issue(s) in %s, %d elsewhere\n",
    $scim_issues,
    $scim_database,
    $other_issues);

  return $scim_issues ? 1 : 0;
}

function scim_describe_column(
  array $expect,
  array $actual,
  $database_name,
  $table_name,
  $column_name) {

  $describe = function (array $servers) use (
    $database_name,
    $table_name,
    $column_name) {
    foreach ($servers as $server) {
      $database = $server->getDatabase($database_name);
      $table = $database ? $database->getTable($table_name) : null;
      $column = $table ? $table->getColumn($column_name) : null;
      if ($column) {
        return sprintf(
          '%s %s/%s%s',
          $column->getColumnType(),
          $column->getCharacterSet(),
          $column->getCollation(),
          $column->getNullable() ? ' null' : ' not null');
      }
    }
    return 'absent';
  };

  return sprintf(
    ' [expected %s, actual %s]',
    $describe($expect),
    $describe($actual));
}

function scim_create_user($username, $is_bot) {
  $viewer = PhabricatorUser::getOmnipotentUser();

  $user = id(new PhabricatorUser())
    ->setUsername($username)
    ->setRealName(ucfirst($username).' Example')
    ->setIsApproved(1);

  $email = id(new PhabricatorUserEmail())
    ->setAddress($username.'@example.com')
    ->setIsVerified(1);

  id(new PhabricatorUserEditor())
    ->setActor($viewer)
    ->createNewUser($user, $email);

  if ($is_bot) {
    id(new PhabricatorUserEditor())
      ->setActor($viewer)
      ->makeSystemAgentUser($user, true);
  }

  return $user;
}

function scim_load_user($username) {
  $user = id(new PhabricatorPeopleQuery())
    ->setViewer(PhabricatorUser::getOmnipotentUser())
    ->withUsernames(array($username))
    ->executeOne();
  if (!$user) {
    throw new Exception("no user {$username}");
  }
  return $user;
}

function scim_new_session($username) {
  $user = scim_load_user($username);
  return id(new PhabricatorAuthSessionEngine())->establishSession(
    PhabricatorAuthSession::TYPE_WEB,
    $user->getPHID(),
    $partial = false);
}

// The steps of PhabricatorAuthEditController for a new provider, with login,
// registration, linking and unlinking allowed and emails not trusted: the
// host's own config object, transactions and editor, acted by the admin.
function scim_add_provider($admin_name, $class, array $properties) {
  $admin = scim_load_user($admin_name);

  $provider = null;
  foreach (PhabricatorAuthProvider::getAllBaseProviders() as $candidate) {
    if (get_class($candidate) === $class) {
      $provider = $candidate;
    }
  }
  if (!$provider) {
    throw new Exception("no provider class {$class}");
  }

  $config = $provider->getDefaultProviderConfig();
  $provider->attachProviderConfig($config);

  // NOTE: getProviderType() builds the adapter from the config's properties,
  // null on a new config; the final Phabricator's LDAP provider passes them
  // to phutil_split_lines(), and its error handler turns PHP 8.1's
  // deprecation of that into an exception. A copy with the properties
  // answers instead; the transactions below still set them on the config.
  $probe_config = clone $config;
  foreach ($properties as $key => $value) {
    $probe_config->setProperty($key, $value);
  }
  $probe = clone $provider;
  $probe->attachProviderConfig($probe_config);
  $config->setProviderType($probe->getProviderType());
  $config->setProviderDomain($probe->getProviderDomain());

  $types = array(
    PhabricatorAuthProviderConfigTransaction::TYPE_LOGIN => 1,
    PhabricatorAuthProviderConfigTransaction::TYPE_REGISTRATION => 1,
    PhabricatorAuthProviderConfigTransaction::TYPE_LINK => 1,
    PhabricatorAuthProviderConfigTransaction::TYPE_UNLINK => 1,
    PhabricatorAuthProviderConfigTransaction::TYPE_TRUST_EMAILS => 0,
  );
  $xactions = array();
  foreach ($types as $type => $value) {
    $xactions[] = id(new PhabricatorAuthProviderConfigTransaction())
      ->setTransactionType($type)
      ->setNewValue($value);
  }
  foreach ($properties as $key => $value) {
    $xactions[] = id(new PhabricatorAuthProviderConfigTransaction())
      ->setTransactionType(
        PhabricatorAuthProviderConfigTransaction::TYPE_PROPERTY)
      ->setMetadataValue('auth:property', $key)
      ->setNewValue($value);
  }

  $config->save();
  id(new PhabricatorAuthProviderConfigEditor())
    ->setActor($admin)
    ->setContentSource(
      PhabricatorContentSource::newForSource(
        PhabricatorConsoleContentSource::SOURCECONST))
    ->setContinueOnNoEffect(true)
    ->applyTransactions($config, $xactions);

  return $config->getPHID();
}

function scim_token_check($plaintext) {
  $parsed = PhabricatorScimTokenEngine::parseToken($plaintext);
  if (!$parsed) {
    echo "malformed token\n";
    return 1;
  }
  list($id, $secret) = $parsed;

  $token = id(new PhabricatorScimTokenQuery())
    ->setViewer(PhabricatorUser::getOmnipotentUser())
    ->withIDs(array($id))
    ->executeOne();
  if (!$token) {
    echo "no token row {$id}\n";
    return 1;
  }

  if (strpos($token->getTokenHash(), $secret) !== false) {
    echo "token {$id}: the secret is stored in plaintext\n";
    return 1;
  }

  $bot = $token->getBot();
  $ok = PhabricatorScimTokenEngine::verifySecret(
    $secret,
    $token->getTokenHash());

  printf(
    "token %d: hash %s, state %s, bot %s%s%s\n",
    $id,
    $ok ? 'verifies' : 'DOES NOT VERIFY',
    $token->getState(PhabricatorTime::getNow()),
    $bot ? $bot->getUsername() : '-',
    ($bot && $bot->getIsSystemAgent()) ? ' (bot)' : ' (NOT A BOT)',
    ($bot && $bot->getIsAdmin()) ? ' (ADMIN)' : '');

  return ($ok && $bot && $bot->getIsSystemAgent() && !$bot->getIsAdmin())
    ? 0
    : 1;
}

// Writes what the Rust service writes, as plain SQL, for a test run without
// the service binary (and for screenshots). The rows follow the columns of
// schema/scim/.
function scim_seed_service($username, $admin_username) {
  $user = scim_load_user($username);
  $admin = scim_load_user($admin_username);
  $now = PhabricatorTime::getNow();

  // A project SCIM manages (created through Phorge's own editor, as the
  // fixture; the service writes the same rows), and an account it does not.
  $project = scim_create_project($admin, 'Design Team');
  $phantom = scim_create_user('mallory', false);

  $conn = id(new PhabricatorScimEvent())->establishConnection('w');

  queryfx(
    $conn,
    'INSERT INTO %R (instanceKey, hostname, version, dateStarted,
        dateCreated, dateModified, guardShare, guardMin, guardWindow)
      VALUES (%s, %s, %s, %d, %d, %d, %f, %d, %d),
        (%s, %s, %s, %d, %d, %d, NULL, NULL, NULL)',
    new PhabricatorScimInstance(),
    'c1f0e2d4a5b6',
    'scim-1.example.internal',
    '0.1.0',
    $now - 86400,
    $now - 86400,
    $now - 5,
    0.25,
    20,
    3600,
    '9a8b7c6d5e4f',
    'scim-2.example.internal',
    '0.1.0',
    $now - 90000,
    $now - 90000,
    $now - 7200);

  queryfx(
    $conn,
    'INSERT INTO %R (userPHID, userName, externalID, attributes, version,
        isDeprovisioned, dateCreated, dateModified)
      VALUES (%s, %s, %s, %s, 1, 0, %d, %d)',
    new PhabricatorScimUser(),
    $user->getPHID(),
    $username.'@example.com',
    'ext-'.$username,
    '{}',
    $now - 600,
    $now - 600);

  $events = array(
    array(
      'POST', '/scim/v2/Users', 'User', $user->getPHID(), 201, 'ok',
      'Created user '.$username.' ('.$username.'@example.com)',
      '{"userName":{"new":"'.$username.'@example.com"},'.
      '"realName":{"new":"'.$user->getRealName().'"}}',
      600,
    ),
    array(
      'PATCH', '/scim/v2/Users/'.$user->getPHID(), 'User', $user->getPHID(),
      200, 'warning',
      'Updated user '.$username.': phoneNumbers kept in SCIM only',
      '{"ignored":"phoneNumbers has no Phorge column"}',
      300,
    ),
    array(
      'POST', '/scim/v2/Groups', 'Group', $project->getPHID(), 201, 'ok',
      'Created project Design (members: '.$username.')',
      '{"name":{"new":"Design"},"members":{"add":["'.$username.'"]}}',
      500,
    ),
    array(
      'POST', '/scim/v2/Groups', 'Group', null, 409, 'error',
      'Group "Design" conflicts with an existing project',
      '{"scimType":"uniqueness"}',
      120,
    ),
    array(
      '*', '*', null, null, 401, 'error',
      '1000 requests from 203.0.113.9 refused: invalid, expired or revoked token',
      '{"client":"203.0.113.9","reason":"invalid-token","count":1000,'.
        '"firstSeen":"2026-12-02T07:00:01Z","lastSeen":"2026-12-02T07:00:59Z"}',
      60,
    ),
    // Details as the service writes them: a member delta with ids, a change
    // of a value, what a deactivation revoked.
    array(
      'PATCH', '/scim/v2/Groups/'.$project->getPHID(), 'Group',
      $project->getPHID(), 204, 'ok',
      'update group "Design Team"',
      phutil_json_encode(array(
        'members' => array(
          'added' => 1,
          'removed' => 0,
          'addedIds' => array($user->getPHID()),
          'removedIds' => array(),
        ),
      )),
      50,
    ),
    array(
      'PATCH', '/scim/v2/Users/'.$user->getPHID(), 'User', $user->getPHID(),
      200, 'ok',
      'deprovision user '.$username.'@example.com (@'.$username.')',
      phutil_json_encode(array(
        'active' => array('old' => true, 'new' => false),
        'revoked' => array(
          'sessions' => 2,
          'api_tokens' => 1,
          'temporary_tokens' => 0,
        ),
      )),
      40,
    ),
  );

  // Every event but the refused one was made with the first token.
  $token_id = queryfx_one(
    $conn,
    'SELECT MIN(id) id FROM %R',
    new PhabricatorScimToken());
  $token_id = (int)$token_id['id'];

  foreach ($events as $ii => $event) {
    list($method, $path, $type, $phid, $status, $outcome, $summary,
      $details, $age) = $event;
    queryfx(
      $conn,
      'INSERT INTO %R (requestID, tokenID, method, path, resourceType,
          objectPHID, status, outcome, summary, details, dateCreated,
          dateModified)
        VALUES (%s, %nd, %s, %s, %ns, %ns, %d, %s, %s, %s, %d, %d)',
      new PhabricatorScimEvent(),
      'req-'.($ii + 1),
      ($status == 401) ? null : $token_id,
      $method,
      $path,
      $type,
      $phid,
      $status,
      $outcome,
      $summary,
      $details,
      $now - $age,
      $now - $age);
  }

  queryfx(
    $conn,
    'UPDATE %R SET dateLastUsed = %d WHERE dateRevoked IS NULL
      AND dateLastUsed IS NULL ORDER BY id LIMIT 1',
    new PhabricatorScimToken(),
    $now - 60);

  queryfx(
    $conn,
    'INSERT INTO %R (projectPHID, displayName, externalID, attributes,
        version, dateCreated, dateModified)
      VALUES (%s, %s, %s, %s, 1, %d, %d)',
    new PhabricatorScimGroup(),
    $project->getPHID(),
    'Design',
    'ext-design',
    '{}',
    $now - 500,
    $now - 500);

  $findings = array(
    array(
      'project-renamed',
      $project->getPHID(),
      'Project "Design" was renamed to "Design Team" in Phorge',
    ),
    array(
      'user-reenabled',
      $user->getPHID(),
      'User '.$username.' was deprovisioned by SCIM and enabled by hand',
    ),
    array(
      'phantom-account',
      $phantom->getPHID(),
      'Active account mallory is not managed by the identity provider',
    ),
  );
  foreach ($findings as $ii => $finding) {
    list($type, $phid, $summary) = $finding;
    queryfx(
      $conn,
      'INSERT INTO %R (driftType, objectPHID, summary, details, dateCreated,
          dateModified)
        VALUES (%s, %s, %s, %s, %d, %d)',
      new PhabricatorScimDrift(),
      $type,
      $phid,
      $summary,
      '{}',
      $now - 30 * ($ii + 1),
      $now - 30 * ($ii + 1));
  }
}

function scim_create_project(PhabricatorUser $admin, $name) {
  $project = PhabricatorProject::initializeNewProject($admin);
  $xactions = array();
  $xactions[] = id(new PhabricatorProjectTransaction())
    ->setTransactionType(PhabricatorProjectNameTransaction::TRANSACTIONTYPE)
    ->setNewValue($name);
  id(new PhabricatorProjectTransactionEditor())
    ->setActor($admin)
    ->setContentSource(
      PhabricatorContentSource::newForSource(
        PhabricatorConsoleContentSource::SOURCECONST))
    ->setContinueOnNoEffect(true)
    ->applyTransactions($project, $xactions);
  return $project;
}

// Writes a staged rollout as the service would (schema/scim/ patch 12), as
// plain SQL: the rollout row, one operation per SCIM write (pending, one
// applied, one failed), plan entries of every kind, and refused requests.
// Accounts the fixture makes: bob (adopted), dave (deactivated), hank
// (deleted), gina (disabled, rehired), erin (named by a conflict only) and
// frank (named by nothing): erin and frank stay unclaimed, like mallory of
// seed-service. Prints nothing.
function scim_seed_plan($admin_username) {
  $admin = scim_load_user($admin_username);
  $alice = scim_load_user('alice');
  $now = PhabricatorTime::getNow();

  $users = array();
  foreach (array('bob', 'dave', 'hank', 'gina', 'erin', 'frank') as $name) {
    $users[$name] = scim_create_user($name, false);
  }
  // Disabled as the host's own "Disable User" would leave the row (the
  // fixture needs only the flag).
  queryfx(
    $users['gina']->establishConnection('w'),
    'UPDATE %R SET isDisabled = 1 WHERE phid = %s',
    $users['gina'],
    $users['gina']->getPHID());
  $design = id(new PhabricatorProjectQuery())
    ->setViewer(PhabricatorUser::getOmnipotentUser())
    ->withNames(array('Design Team'))
    ->executeOne();
  $legacy = scim_create_project($admin, 'Legacy Ops');

  // The objects the plan creates do not exist yet.
  $new_user = 'PHID-USER-'.substr(md5('zoe'), 0, 20);
  $new_project = 'PHID-PROJ-'.substr(md5('platform'), 0, 20);

  $conn = id(new PhabricatorScimPlanEntry())->establishConnection('w');

  queryfx(
    $conn,
    'INSERT INTO %R (phase, dateStaged, dateCreated, dateModified)
      VALUES (%s, %d, %d, %d)',
    new PhabricatorScimRollout(),
    'staged',
    $now - 7200,
    $now - 7200,
    $now - 7200);

  $token = queryfx_one(
    $conn,
    'SELECT id, botPHID FROM %R ORDER BY id LIMIT 1',
    new PhabricatorScimToken());

  $json = function (array $value) {
    return phutil_json_encode($value);
  };

  // Each operation: (operation, object, state, error, entries); each entry:
  // (kind, resourceType, object, status, summary, details).
  $ops = array(
    array('user.create', $new_user, 'staged', null, array(
      array('user.create', 'User', $new_user, 201,
        'create user zoe@example.com as @zoe2',
        $json(array(
          'username' => 'zoe2',
          'email' => 'zoe@example.com',
          'usernameTaken' => 'zoe',
        ))),
    )),
    array('user.create', $users['bob']->getPHID(), 'staged', null, array(
      array('user.adopt', 'User', $users['bob']->getPHID(), 201,
        'adopt user bob@example.com (@bob)',
        $json(array(
          'matchedBy' => 'verified primary email',
          'email' => 'bob@example.com',
          'realName' => array('old' => 'Bob Example', 'new' => 'Bob B.'),
        ))),
    )),
    array('user.create', $users['gina']->getPHID(), 'staged', null, array(
      array('user.rehire', 'User', $users['gina']->getPHID(), 201,
        'rehire user gina@example.com (@gina)',
        $json(array(
          'matchedBy' => 'verified primary email',
          'active' => array('old' => false, 'new' => true),
        ))),
    )),
    array('user.patch', $alice->getPHID(), 'applied', null, array(
      array('user.update', 'User', $alice->getPHID(), 200,
        'update user alice@example.com (@alice)',
        $json(array(
          'realName' => array('old' => 'Alice Example', 'new' => 'Alice A.'),
          'emailsAdded' => array('alice.a@example.com'),
          'emailsRemoved' => array(),
        ))),
      array('user.reactivate', 'User', $alice->getPHID(), 200,
        'reactivate user alice@example.com (@alice)',
        $json(array('active' => array('old' => false, 'new' => true)))),
    )),
    array('user.patch', $users['dave']->getPHID(), 'staged', null, array(
      array('user.deactivate', 'User', $users['dave']->getPHID(), 200,
        'deactivate user dave@example.com (@dave)',
        $json(array(
          'active' => array('old' => true, 'new' => false),
          'revoked' => array(
            'sessions' => 3,
            'api_tokens' => 1,
            'temporary_tokens' => 0,
          ),
        ))),
    )),
    array('user.delete', $users['hank']->getPHID(), 'staged', null, array(
      array('user.delete', 'User', $users['hank']->getPHID(), 204,
        'delete user hank@example.com (@hank)',
        $json(array(
          'active' => array('old' => true, 'new' => false),
          'revoked' => array(
            'sessions' => 1,
            'api_tokens' => 0,
            'temporary_tokens' => 2,
          ),
        ))),
    )),
    array('group.create', $new_project, 'staged', null, array(
      array('group.create', 'Group', $new_project, 201,
        'create project Platform',
        $json(array('name' => 'Platform'))),
      array('group.members', 'Group', $new_project, 201,
        'members of Platform',
        $json(array(
          'members' => array(
            'added' => 2,
            'removed' => 0,
            'addedIds' => array($users['bob']->getPHID(), $new_user),
            'removedIds' => array(),
          ),
        ))),
    )),
    array('group.create', $design->getPHID(), 'applied', null, array(
      array('group.adopt', 'Group', $design->getPHID(), 201,
        'adopt project Design Team',
        $json(array('matchedBy' => 'name'))),
    )),
    array('group.patch', $design->getPHID(), 'failed',
      'project members changed by hand while the plan was staged',
      array(
        array('group.update', 'Group', $design->getPHID(), 204,
          'rename project Design Team to Design',
          $json(array(
            'name' => array('old' => 'Design Team', 'new' => 'Design'),
          ))),
        array('group.members', 'Group', $design->getPHID(), 204,
          'members of Design',
          $json(array(
            'members' => array(
              'added' => 1,
              'removed' => 1,
              'addedIds' => array($users['bob']->getPHID()),
              'removedIds' => array($alice->getPHID()),
            ),
          ))),
      )),
    array('group.delete', $legacy->getPHID(), 'staged', null, array(
      array('group.delete', 'Group', $legacy->getPHID(), 204,
        'delete project Legacy Ops',
        $json(array('status' => array('old' => 0, 'new' => 100)))),
    )),
  );

  $age = 3600;
  foreach ($ops as $ii => $op) {
    list($operation, $object, $state, $error, $entries) = $op;
    $age -= 60;
    queryfx(
      $conn,
      'INSERT INTO %R (opKey, operation, objectPHID, request, requestID,
          tokenID, actorPHID, remoteAddr, state, error, dateApplied,
          dateCreated, dateModified)
        VALUES (%s, %s, %s, %s, %s, %d, %s, %s, %s, %ns, %nd, %d, %d)',
      new PhabricatorScimStageOp(),
      'op-'.($ii + 1),
      $operation,
      $object,
      '{}',
      'plan-req-'.($ii + 1),
      (int)$token['id'],
      $token['botPHID'],
      '203.0.113.5',
      $state,
      $error,
      ($state === 'staged') ? null : $now - 60,
      $now - $age,
      $now - $age);
    $op_id = $conn->getInsertID();
    foreach ($entries as $entry) {
      scim_insert_plan_entry($conn, $op_id, $entry, $now - $age);
    }
  }

  // Refused requests: no operation.
  $conflicts = array(
    array('conflict', 'User', $users['erin']->getPHID(), 409,
      'refused: create user erin@example.com: @erin has another '.
        'verified address',
      $json(array(
        'reason' => 'the account @erin exists with another verified '.
          'primary address',
        'scimType' => 'uniqueness',
        'method' => 'POST',
        'path' => '/Users',
      ))),
    array('conflict', 'Group', null, 409,
      'refused: create group Design: two projects match',
      $json(array(
        'reason' => 'more than one project is named like "Design"',
        'scimType' => 'uniqueness',
        'method' => 'POST',
        'path' => '/Groups',
      ))),
  );
  foreach ($conflicts as $entry) {
    scim_insert_plan_entry($conn, null, $entry, $now - 30);
  }
}

function scim_insert_plan_entry($conn, $op_id, array $entry, $epoch) {
  list($kind, $type, $object, $status, $summary, $details) = $entry;
  queryfx(
    $conn,
    'INSERT INTO %R (stageOpID, kind, resourceType, objectPHID, status,
        summary, details, dateCreated, dateModified)
      VALUES (%nd, %s, %s, %ns, %d, %s, %s, %d, %d)',
    new PhabricatorScimPlanEntry(),
    $op_id,
    $kind,
    $type,
    $object,
    $status,
    $summary,
    $details,
    $epoch,
    $epoch);
}

// The first and last names of scim_populate's people (and of the IdP
// directory tests/php/staged-rollout.sh pushes): person $i is
// first[$i % 20].last[$i / 20].
function scim_people_names() {
  return array(
    array('ada', 'alan', 'barbara', 'claude', 'dennis', 'edsger', 'frances',
      'grace', 'hedy', 'ivan', 'jean', 'ken', 'leslie', 'margaret', 'niklaus',
      'radia', 'sophie', 'tim', 'vint', 'whitfield'),
    array('allen', 'backus', 'cerf', 'dijkstra', 'engelbart', 'floyd',
      'goldberg', 'hopper', 'iverson', 'johnson', 'knuth', 'lamport',
      'liskov', 'milner', 'naur', 'perlman', 'ritchie', 'shannon',
      'thompson', 'wirth'),
  );
}

function scim_populate($count, $project_count, $admin_username) {
  list($first, $last) = scim_people_names();
  $viewer = PhabricatorUser::getOmnipotentUser();
  $admin = scim_load_user($admin_username);
  $phids = array();
  for ($i = 0; $i < $count; $i++) {
    $name = $first[$i % 20].'.'.$last[(int)($i / 20) % 20];
    $user = id(new PhabricatorUser())
      ->setUsername($name)
      ->setRealName(ucfirst($first[$i % 20]).' '.ucfirst($last[(int)($i / 20) % 20]))
      ->setIsApproved(1);
    $email = id(new PhabricatorUserEmail())
      ->setAddress($name.'@corp.example')
      ->setIsVerified(1);
    id(new PhabricatorUserEditor())
      ->setActor($viewer)
      ->createNewUser($user, $email);
    if ($i % 7 == 0) {
      id(new PhabricatorAuthSessionEngine())->establishSession(
        PhabricatorAuthSession::TYPE_WEB,
        $user->getPHID(),
        $partial = false);
    }
    $phids[] = $user->getPHID();
  }
  $teams = array('Infrastructure', 'Release Engineering', 'Security',
    'Mobile', 'Web Platform', 'Data', 'Developer Tools', 'Design Systems',
    'Payments', 'Search', 'Identity', 'Observability');
  $source = PhabricatorContentSource::newForSource(
    PhabricatorConsoleContentSource::SOURCECONST);
  for ($p = 0; $p < $project_count; $p++) {
    $name = $teams[$p % count($teams)];
    if ($p >= count($teams)) {
      $name .= ' '.(int)($p / count($teams) + 1);
    }
    $members = array();
    for ($m = $p; $m < count($phids); $m += $project_count) {
      $members[] = $phids[$m];
    }
    $project = PhabricatorProject::initializeNewProject($admin);
    $xactions = array();
    $xactions[] = id(new PhabricatorProjectTransaction())
      ->setTransactionType(PhabricatorTransactions::TYPE_CREATE);
    $xactions[] = id(new PhabricatorProjectTransaction())
      ->setTransactionType(PhabricatorProjectNameTransaction::TRANSACTIONTYPE)
      ->setNewValue($name);
    $xactions[] = id(new PhabricatorProjectTransaction())
      ->setTransactionType(PhabricatorTransactions::TYPE_EDGE)
      ->setMetadataValue(
        'edge:type',
        PhabricatorProjectProjectHasMemberEdgeType::EDGECONST)
      ->setNewValue(array('=' => array_fuse($members)));
    id(new PhabricatorProjectTransactionEditor())
      ->setActor($admin)
      ->setContentSource($source)
      ->setContinueOnNoEffect(true)
      ->applyTransactions($project, $xactions);
  }
  return $count.' accounts, '.$project_count.' projects';
}
