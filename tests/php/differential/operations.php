<?php

// The operations of the differential suite, in the order they run. Each one
// is written twice, side by side: `host` performs it through the host's own
// PHP (oracle.php, inside Phorge/Phabricator), `scim` as the SCIM requests an
// identity provider sends (scim.php). Both start from the same state: the
// fixture, then every earlier operation.
//
//   host     closure run by oracle.php
//   scim     list of array(METHOD, PATH, BODY, SAVE_AS): PATH may name
//            {KEY} of an earlier SAVE_AS, which stores the returned `id`
//   prepare  usernames given a session, an API token and a one-time login
//            link first, on both sides (not compared)
//   service  'ldap': sent to the service instance with login_provider set
//
// Users are named `<name>@example.com` in SCIM and `<name>` in Phabricator
// (the default username_policy, local-part).

const DIFF_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const DIFF_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const DIFF_PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const DIFF_ENTERPRISE =
  'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

function diff_user_body($name, $display, array $extra = array()) {
  return array_merge(
    array(
      'schemas' => array(DIFF_USER),
      'userName' => $name.'@example.com',
      'displayName' => $display,
      'emails' => array(
        array(
          'value' => $name.'@example.com',
          'type' => 'work',
          'primary' => true,
        ),
      ),
      'active' => true,
    ),
    $extra);
}

function diff_patch(array $operations) {
  return array('schemas' => array(DIFF_PATCH), 'Operations' => $operations);
}

function diff_group_body($name, array $members) {
  $list = array();
  foreach ($members as $member) {
    $list[] = array('value' => '{'.$member.'}');
  }
  return array(
    'schemas' => array(DIFF_GROUP),
    'displayName' => $name,
    'members' => $list,
  );
}

function differential_operations() {
  $ops = array();

  $ops['user-create-full'] = array(
    'host' => function () {
      oracle_create_user('alice', 'Alice Liddell', 'alice@example.com');
      oracle_add_email('alice', 'alice.home@example.com');
    },
    'scim' => array(
      array('POST', '/Users', array(
        'schemas' => array(DIFF_USER, DIFF_ENTERPRISE),
        'userName' => 'alice@example.com',
        'externalId' => 'ext-alice',
        'name' => array(
          'formatted' => 'Alice Liddell',
          'givenName' => 'Alice',
          'familyName' => 'Liddell',
        ),
        'displayName' => 'Alice Liddell',
        'nickName' => 'ali',
        'title' => 'Engineer',
        'userType' => 'Employee',
        'preferredLanguage' => 'en-GB',
        'locale' => 'en-GB',
        'timezone' => 'Europe/London',
        'active' => true,
        'emails' => array(
          array(
            'value' => 'alice@example.com',
            'type' => 'work',
            'primary' => true,
          ),
          array('value' => 'alice.home@example.com', 'type' => 'home'),
        ),
        'phoneNumbers' => array(
          array('value' => '+44 20 7946 0000', 'type' => 'work'),
        ),
        DIFF_ENTERPRISE => array(
          'employeeNumber' => '1001',
          'department' => 'Research',
        ),
      ), 'alice'),
    ),
  );

  $ops['user-create-minimal'] = array(
    'host' => function () {
      oracle_create_user('bob', 'Bob Marley', 'bob@example.com');
    },
    'scim' => array(
      array('POST', '/Users', diff_user_body('bob', 'Bob Marley'), 'bob'),
    ),
  );

  $ops['user-create-third'] = array(
    'host' => function () {
      oracle_create_user('carol', 'Carol Danvers', 'carol@example.com');
    },
    'scim' => array(
      array('POST', '/Users', diff_user_body('carol', 'Carol Danvers'),
        'carol'),
    ),
  );

  $ops['user-realname'] = array(
    'host' => function () {
      oracle_set_real_name('alice', 'Alice Pleasance Liddell');
    },
    'scim' => array(
      array('PATCH', '/Users/{alice}', diff_patch(array(
        array(
          'op' => 'replace',
          'path' => 'displayName',
          'value' => 'Alice Pleasance Liddell',
        ),
      ))),
    ),
  );

  $ops['user-email-add'] = array(
    'host' => function () {
      oracle_add_email('alice', 'alice.lab@example.com');
    },
    'scim' => array(
      array('PATCH', '/Users/{alice}', diff_patch(array(
        array(
          'op' => 'add',
          'path' => 'emails',
          'value' => array(
            array('value' => 'alice.lab@example.com', 'type' => 'other'),
          ),
        ),
      ))),
    ),
  );

  $ops['user-email-remove'] = array(
    'host' => function () {
      oracle_remove_email('alice', 'alice.home@example.com');
    },
    'scim' => array(
      array('PATCH', '/Users/{alice}', diff_patch(array(
        array(
          'op' => 'remove',
          'path' => 'emails[value eq "alice.home@example.com"]',
        ),
      ))),
    ),
  );

  $ops['user-email-primary'] = array(
    'host' => function () {
      oracle_add_email('alice', 'alice@new.example.com');
      oracle_make_primary('alice', 'alice@new.example.com');
    },
    'scim' => array(
      array('PATCH', '/Users/{alice}', diff_patch(array(
        array(
          'op' => 'replace',
          'path' => 'emails',
          'value' => array(
            array(
              'value' => 'alice@new.example.com',
              'type' => 'work',
              'primary' => true,
            ),
            array('value' => 'alice@example.com', 'type' => 'other'),
            array('value' => 'alice.lab@example.com', 'type' => 'other'),
          ),
        ),
      ))),
    ),
  );

  $ops['user-deactivate'] = array(
    'prepare' => array('alice'),
    'host' => function () {
      oracle_set_disabled('alice', true);
    },
    'scim' => array(
      array('PATCH', '/Users/{alice}', diff_patch(array(
        array('op' => 'replace', 'path' => 'active', 'value' => false),
      ))),
    ),
  );

  $ops['user-reactivate'] = array(
    'host' => function () {
      oracle_set_disabled('alice', false);
    },
    'scim' => array(
      array('PATCH', '/Users/{alice}', diff_patch(array(
        array('op' => 'replace', 'path' => 'active', 'value' => true),
      ))),
    ),
  );

  $ops['user-put-realname'] = array(
    'host' => function () {
      oracle_set_real_name('carol', 'Carol Rambeau');
    },
    'scim' => array(
      array('PUT', '/Users/{carol}',
        diff_user_body('carol', 'Carol Rambeau')),
    ),
  );

  $ops['user-bot'] = array(
    'host' => function () {
      oracle_create_user('build', 'Build Robot', 'build@example.com', true);
    },
    'scim' => array(
      array('POST', '/Users', diff_user_body('build', 'Build Robot',
        array('userType' => 'Bot')), 'build'),
    ),
  );

  $ops['user-agent'] = array(
    'host' => function () {
      oracle_create_user('triage', 'Triage Agent', 'triage@example.com', true);
    },
    'scim' => array(
      array('POST', '/Users', diff_user_body('triage', 'Triage Agent',
        array('userType' => 'Agent')), 'triage'),
    ),
  );

  $ops['user-adopt'] = array(
    'host' => function () {
      oracle_set_real_name('dana', 'Dana Katherine Scully');
    },
    'scim' => array(
      array('POST', '/Users',
        diff_user_body('dana', 'Dana Katherine Scully'), 'dana'),
    ),
  );

  $ops['user-ldap'] = array(
    'service' => 'ldap',
    'host' => function () {
      oracle_create_user('fox', 'Fox Mulder', 'fox@example.com');
      oracle_link_ldap('fox', array(
        'uid' => 'fox',
        'cn' => 'Fox Mulder',
        'mail' => 'fox@example.com',
      ));
    },
    'scim' => array(
      array('POST', '/Users', diff_user_body('fox', 'Fox Mulder'), 'fox'),
    ),
  );

  $ops['group-create'] = array(
    'host' => function () {
      oracle_create_project('Design Team', array('alice', 'carol'));
    },
    'scim' => array(
      array('POST', '/Groups',
        diff_group_body('Design Team', array('alice', 'carol')), 'design'),
    ),
  );

  $ops['group-create-empty'] = array(
    'host' => function () {
      oracle_create_project('Empty Crew', array());
    },
    'scim' => array(
      array('POST', '/Groups', diff_group_body('Empty Crew', array()),
        'empty'),
    ),
  );

  $ops['group-rename'] = array(
    'host' => function () {
      oracle_project_transactions('Design Team', array(
        id(new PhabricatorProjectTransaction())
          ->setTransactionType(
            PhabricatorProjectNameTransaction::TRANSACTIONTYPE)
          ->setNewValue('Design Guild'),
      ));
    },
    'scim' => array(
      array('PATCH', '/Groups/{design}', diff_patch(array(
        array(
          'op' => 'replace',
          'path' => 'displayName',
          'value' => 'Design Guild',
        ),
      ))),
    ),
  );

  $ops['group-add-members'] = array(
    'host' => function () {
      oracle_project_transactions('Design Guild', array(
        oracle_members_xaction('+', array('bob', 'fox')),
      ));
    },
    'scim' => array(
      array('PATCH', '/Groups/{design}', diff_patch(array(
        array(
          'op' => 'add',
          'path' => 'members',
          'value' => array(
            array('value' => '{bob}'),
            array('value' => '{fox}'),
          ),
        ),
      ))),
    ),
  );

  $ops['group-remove-members'] = array(
    'host' => function () {
      oracle_project_transactions('Design Guild', array(
        oracle_members_xaction('-', array('carol')),
      ));
    },
    'scim' => array(
      array('PATCH', '/Groups/{design}', diff_patch(array(
        array(
          'op' => 'remove',
          'path' => 'members[value eq "{carol}"]',
        ),
      ))),
    ),
  );

  $ops['group-replace-members'] = array(
    'host' => function () {
      oracle_project_transactions('Design Guild', array(
        oracle_members_xaction('=', array('bob', 'carol', 'build')),
      ));
    },
    'scim' => array(
      array('PUT', '/Groups/{design}',
        diff_group_body('Design Guild', array('bob', 'carol', 'build'))),
    ),
  );

  $ops['group-second'] = array(
    'host' => function () {
      oracle_create_project('Ops Team', array('bob', 'dana'));
    },
    'scim' => array(
      array('POST', '/Groups', diff_group_body('Ops Team', array('bob', 'dana')),
        'ops'),
    ),
  );

  $ops['group-adopt'] = array(
    'host' => function () {
      oracle_project_transactions('Legacy Team', array(
        oracle_members_xaction('+', array('carol')),
      ));
    },
    'scim' => array(
      array('POST', '/Groups', diff_group_body('Legacy Team', array('carol')),
        'legacy'),
    ),
  );

  $ops['user-deactivate-member'] = array(
    'prepare' => array('bob'),
    'host' => function () {
      oracle_set_disabled('bob', true);
    },
    'scim' => array(
      array('PATCH', '/Users/{bob}', diff_patch(array(
        array('op' => 'replace', 'path' => 'active', 'value' => false),
      ))),
    ),
  );

  $ops['group-delete'] = array(
    'host' => function () {
      oracle_project_transactions('Ops Team', array(
        id(new PhabricatorProjectTransaction())
          ->setTransactionType(
            PhabricatorProjectStatusTransaction::TRANSACTIONTYPE)
          ->setNewValue(PhabricatorProjectStatus::STATUS_ARCHIVED),
      ));
    },
    'scim' => array(
      array('DELETE', '/Groups/{ops}', null),
    ),
  );

  // NOTE: A SCIM DELETE ends the user's SCIM resource, so phab-scim also takes
  // the user out of every group it manages (a member that answers 404 would be
  // left in each group's "members" otherwise). The oracle does what an admin
  // would do in the host for the same outcome: disable the account, then
  // remove it from each of its projects with the project editor.
  $ops['user-delete'] = array(
    'prepare' => array('carol'),
    'host' => function () {
      oracle_set_disabled('carol', true);
      $projects = id(new PhabricatorProjectQuery())
        ->setViewer(oracle_viewer())
        ->withMemberPHIDs(array(oracle_user('carol')->getPHID()))
        ->execute();
      $projects = msort($projects, 'getID');
      foreach ($projects as $project) {
        oracle_project_transactions($project->getName(), array(
          oracle_members_xaction('-', array('carol')),
        ));
      }
    },
    'scim' => array(
      array('DELETE', '/Users/{carol}', null),
    ),
  );

  $ops['user-rehire'] = array(
    'host' => function () {
      oracle_set_disabled('carol', false);
    },
    'scim' => array(
      array('POST', '/Users', diff_user_body('carol', 'Carol Rambeau'),
        'carol'),
    ),
  );

  return $ops;
}
