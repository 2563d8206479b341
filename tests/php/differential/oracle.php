<?php

// The host side of tests/php/differential.sh: performs one operation of the
// differential suite through the host's own PHP code (PhabricatorUserEditor,
// PhabricatorUserTransactionEditor, PhabricatorProjectTransactionEditor, the
// LDAP provider's account code), in the namespace PHABRICATOR_ENV selects.
//
//   oracle.php fixture            the shared starting state (before the copy)
//   oracle.php prepare USER       gives USER a web session, a Conduit API
//                                 token and a one-time login link (setup
//                                 before a deprovisioning, not compared)
//   oracle.php op OPERATION       one operation, named as in operations.php
//
// Who acts: the SCIM bot (`scim-bot`, made by `bin/user scim-token issue`),
// the account phab-scim attributes its changes to, with the extension's
// `scim` content source (PhabricatorScimContentSource). Actor and content
// source are inputs of an edit, not what the suite measures; giving both
// sides the same inputs makes the rows comparable column for column.
// User-editor transactions run as the host's omnipotent viewer acting as the
// bot, as `bin/user` workflows act as the People application: the bot holds
// no "Can Disable Users" capability, phab-scim's token stands in for it.

$root = getenv('PHABRICATOR_ROOT');
require_once $root.'/scripts/init/init-script.php';
require_once __DIR__.'/operations.php';

$args = array_slice($argv, 1);
$command = array_shift($args);

switch ($command) {
  case 'fixture':
    oracle_fixture();
    exit(0);
  case 'prepare':
    oracle_prepare($args[0]);
    exit(0);
  case 'op':
    $ops = differential_operations();
    if (!isset($ops[$args[0]])) {
      fwrite(STDERR, "unknown operation {$args[0]}\n");
      exit(2);
    }
    call_user_func($ops[$args[0]]['host']);
    exit(0);
}
fwrite(STDERR, "usage: oracle.php fixture | prepare USER | op OPERATION\n");
exit(2);

function oracle_viewer() {
  return PhabricatorUser::getOmnipotentUser();
}

function oracle_bot() {
  return oracle_user('scim-bot');
}

function oracle_source() {
  return PhabricatorContentSource::newForSource(
    PhabricatorScimContentSource::SOURCECONST);
}

function oracle_user($username) {
  $user = id(new PhabricatorPeopleQuery())
    ->setViewer(oracle_viewer())
    ->withUsernames(array($username))
    ->executeOne();
  if (!$user) {
    throw new Exception("no user {$username}");
  }
  return $user;
}

function oracle_project($name) {
  $project = id(new PhabricatorProjectQuery())
    ->setViewer(oracle_viewer())
    ->withNames(array($name))
    ->executeOne();
  if (!$project) {
    throw new Exception("no project {$name}");
  }
  return $project;
}

function oracle_email($address) {
  $email = id(new PhabricatorUserEmail())->loadOneWhere(
    'address = %s',
    $address);
  if (!$email) {
    throw new Exception("no address {$address}");
  }
  return $email;
}

/** createNewUser with a verified address, as People > Create does. */
function oracle_create_user($username, $real_name, $address, $bot = false) {
  $user = id(new PhabricatorUser())
    ->setUsername($username)
    ->setRealName($real_name)
    ->setIsApproved(1);
  $email = id(new PhabricatorUserEmail())
    ->setAddress($address)
    ->setIsVerified(1);
  id(new PhabricatorUserEditor())
    ->setActor(oracle_bot())
    ->createNewUser($user, $email);
  if ($bot) {
    id(new PhabricatorUserEditor())
      ->setActor(oracle_bot())
      ->makeSystemAgentUser($user, true);
  }
  return $user;
}

/** addEmail with the address verified: an IdP's addresses are verified. */
function oracle_add_email($username, $address) {
  $email = id(new PhabricatorUserEmail())
    ->setAddress($address)
    ->setIsVerified(1);
  id(new PhabricatorUserEditor())
    ->setActor(oracle_bot())
    ->addEmail(oracle_user($username), $email);
}

function oracle_remove_email($username, $address) {
  id(new PhabricatorUserEditor())
    ->setActor(oracle_bot())
    ->removeEmail(oracle_user($username), oracle_email($address));
}

function oracle_make_primary($username, $address) {
  id(new PhabricatorUserEditor())
    ->setActor(oracle_bot())
    ->changePrimaryEmail(oracle_user($username), oracle_email($address));
}

function oracle_user_transactions($username, array $xactions) {
  id(new PhabricatorUserTransactionEditor())
    ->setActor(oracle_viewer())
    ->setActingAsPHID(oracle_bot()->getPHID())
    ->setContentSource(oracle_source())
    ->setContinueOnNoEffect(true)
    ->setContinueOnMissingFields(true)
    ->applyTransactions(oracle_user($username), $xactions);
}

/** The profile form's `core:customfield` transaction for user:realname
 * (PhabricatorPeopleProfileEditController, through the custom field). */
function oracle_set_real_name($username, $real_name) {
  $user = oracle_user($username);
  $fields = PhabricatorCustomField::getObjectFields(
    $user,
    PhabricatorCustomField::ROLE_EDIT);
  $fields
    ->setViewer(oracle_viewer())
    ->readFieldsFromStorage($user);
  $xactions = array();
  foreach ($fields->getFields() as $field) {
    if ($field->getFieldKey() !== 'user:realname') {
      continue;
    }
    $xaction = id(new PhabricatorUserTransaction())
      ->setTransactionType(PhabricatorTransactions::TYPE_CUSTOMFIELD)
      ->setMetadataValue('customfield:key', $field->getFieldKey())
      ->setOldValue($field->getOldValueForApplicationTransactions());
    $field->setValueFromStorage($real_name);
    $xaction->setNewValue($field->getNewValueForApplicationTransactions());
    $xactions[] = $xaction;
  }
  id(new PhabricatorUserTransactionEditor())
    ->setActor(oracle_viewer())
    ->setActingAsPHID(oracle_bot()->getPHID())
    ->setContentSource(oracle_source())
    ->setContinueOnNoEffect(true)
    ->setContinueOnMissingFields(true)
    ->applyTransactions($user, $xactions);
}

function oracle_set_disabled($username, $disabled) {
  oracle_user_transactions($username, array(
    id(new PhabricatorUserTransaction())
      ->setTransactionType(PhabricatorUserDisableTransaction::TRANSACTIONTYPE)
      ->setNewValue($disabled),
  ));
}

/** Links USER to the `ldap:self` provider the way a login through it does
 * (PhabricatorLDAPAuthProvider::processLoginRequest, then "Confirm Link"),
 * with the directory entry the bind would have read. */
function oracle_link_ldap($username, array $entry) {
  $user = oracle_user($username);
  $config = id(new PhabricatorAuthProviderConfigQuery())
    ->setViewer(oracle_viewer())
    ->withProviderClasses(array('PhabricatorLDAPAuthProvider'))
    ->executeOne();
  $provider = $config->getProvider();
  $adapter = $provider->getAdapter();
  $record = array();
  foreach ($entry as $key => $value) {
    $record[$key] = array('count' => 1, 0 => $value);
  }
  $data = new ReflectionProperty('PhutilLDAPAuthAdapter', 'ldapUserData');
  $data->setAccessible(true);
  $data->setValue($adapter, $record);
  $make = new ReflectionMethod(
    'PhabricatorAuthProvider',
    'newExternalAccountForIdentifiers');
  $make->setAccessible(true);
  $account = $make->invoke($provider, $adapter->getAccountIdentifiers());
  // PhabricatorAuthConfirmLinkController.
  $account->setUserPHID($user->getPHID());
  $unguarded = AphrontWriteGuard::beginScopedUnguardedWrites();
  $account->save();
  unset($unguarded);
}

function oracle_project_editor() {
  return id(new PhabricatorProjectTransactionEditor())
    ->setActor(oracle_bot())
    ->setContentSource(oracle_source())
    ->setContinueOnNoEffect(true)
    ->setContinueOnMissingFields(true);
}

function oracle_members_xaction($op, array $usernames) {
  $phids = array();
  foreach ($usernames as $username) {
    $phids[] = oracle_user($username)->getPHID();
  }
  return id(new PhabricatorProjectTransaction())
    ->setTransactionType(PhabricatorTransactions::TYPE_EDGE)
    ->setMetadataValue(
      'edge:type',
      PhabricatorProjectProjectHasMemberEdgeType::EDGECONST)
    ->setNewValue(array($op => array_fuse($phids)));
}

/** A project as Projects > Create Project makes it, with a join policy. */
function oracle_create_project($name, array $members, $actor = null) {
  $actor = $actor ? $actor : oracle_bot();
  $project = PhabricatorProject::initializeNewProject($actor);
  // The edit form (PhabricatorEditEngine) starts every creation with
  // `core:create`.
  $xactions = array();
  $xactions[] = id(new PhabricatorProjectTransaction())
    ->setTransactionType(PhabricatorTransactions::TYPE_CREATE);
  $xactions[] = id(new PhabricatorProjectTransaction())
    ->setTransactionType(PhabricatorProjectNameTransaction::TRANSACTIONTYPE)
    ->setNewValue($name);
  $xactions[] = id(new PhabricatorProjectTransaction())
    ->setTransactionType(PhabricatorTransactions::TYPE_JOIN_POLICY)
    ->setNewValue(PhabricatorPolicies::POLICY_NOONE);
  if ($members) {
    $xactions[] = oracle_members_xaction('+', $members);
  }
  oracle_project_editor()
    ->setActor($actor)
    ->applyTransactions($project, $xactions);
  return $project;
}

function oracle_project_transactions($name, array $xactions) {
  oracle_project_editor()->applyTransactions(
    oracle_project($name),
    $xactions);
}

function oracle_fixture() {
  // An account the IdP will claim by its verified address, and one project a
  // group will adopt by name; made by an administrator before SCIM arrives.
  $admin = id(new PhabricatorUser())
    ->setUsername('oracle-admin')
    ->setRealName('Oracle Admin')
    ->setIsApproved(1);
  id(new PhabricatorUserEditor())
    ->setActor(oracle_viewer())
    ->createNewUser(
      $admin,
      id(new PhabricatorUserEmail())
        ->setAddress('oracle-admin@example.com')
        ->setIsVerified(1));
  $dana = id(new PhabricatorUser())
    ->setUsername('dana')
    ->setRealName('Dana Scully')
    ->setIsApproved(1);
  id(new PhabricatorUserEditor())
    ->setActor($admin)
    ->createNewUser(
      $dana,
      id(new PhabricatorUserEmail())
        ->setAddress('dana@example.com')
        ->setIsVerified(1));
  oracle_create_project('Legacy Team', array(), $admin);

  // The LDAP login provider, as Auth > Add Provider > LDAP makes it.
  $provider = new PhabricatorLDAPAuthProvider();
  $config = $provider->getDefaultProviderConfig();
  $provider->attachProviderConfig($config);
  $template = new PhabricatorAuthProviderConfigTransaction();
  $props = array(
    PhabricatorLDAPAuthProvider::KEY_HOSTNAME => '127.0.0.1',
    PhabricatorLDAPAuthProvider::KEY_PORT => 389,
    PhabricatorLDAPAuthProvider::KEY_DISTINGUISHED_NAME =>
      'ou=people,dc=example,dc=com',
    PhabricatorLDAPAuthProvider::KEY_SEARCH_ATTRIBUTES => 'uid',
    PhabricatorLDAPAuthProvider::KEY_USERNAME_ATTRIBUTE => 'uid',
    PhabricatorLDAPAuthProvider::KEY_REALNAME_ATTRIBUTES => array('cn'),
    PhabricatorLDAPAuthProvider::KEY_VERSION => 3,
  );
  $xactions = array();
  foreach ($props as $key => $value) {
    // NOTE: Set on the object too: the final Phabricator builds the adapter
    // (which reads them) to answer getProviderType().
    $config->setProperty($key, $value);
    $xactions[] = id(clone $template)
      ->setTransactionType(
        PhabricatorAuthProviderConfigTransaction::TYPE_PROPERTY)
      ->setMetadataValue(
        PhabricatorAuthProviderConfigTransaction::PROPERTY_KEY,
        $key)
      ->setNewValue($value);
  }
  $config
    ->setProviderType($provider->getProviderType())
    ->setProviderDomain($provider->getProviderDomain());
  id(new PhabricatorAuthProviderConfigEditor())
    ->setActor($admin)
    ->setContentSource(
      PhabricatorContentSource::newForSource(
        PhabricatorConsoleContentSource::SOURCECONST))
    ->setContinueOnNoEffect(true)
    ->applyTransactions($config, $xactions);
}

function oracle_prepare($username) {
  $user = oracle_user($username);
  id(new PhabricatorAuthSessionEngine())->establishSession(
    PhabricatorAuthSession::TYPE_WEB,
    $user->getPHID(),
    $partial = false);
  PhabricatorConduitToken::initializeNewToken(
    $user->getPHID(),
    PhabricatorConduitToken::TYPE_STANDARD)->save();
  id(new PhabricatorAuthSessionEngine())->getOneTimeLoginURI($user);
}
