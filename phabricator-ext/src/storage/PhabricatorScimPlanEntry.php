<?php

/**
 * What one staged SCIM write would do in Phabricator (`scim_planentry`),
 * or a request the service refused during a staged rollout (a conflict,
 * with no operation). Written by the service only.
 */
final class PhabricatorScimPlanEntry extends PhabricatorScimDAO {

  const KIND_USER_CREATE = 'user.create';
  const KIND_USER_ADOPT = 'user.adopt';
  const KIND_USER_REHIRE = 'user.rehire';
  const KIND_USER_UPDATE = 'user.update';
  const KIND_USER_DEACTIVATE = 'user.deactivate';
  const KIND_USER_REACTIVATE = 'user.reactivate';
  const KIND_USER_DELETE = 'user.delete';
  const KIND_GROUP_CREATE = 'group.create';
  const KIND_GROUP_ADOPT = 'group.adopt';
  const KIND_GROUP_UPDATE = 'group.update';
  const KIND_GROUP_DELETE = 'group.delete';
  const KIND_GROUP_MEMBERS = 'group.members';
  const KIND_CONFLICT = 'conflict';

  const RESOURCE_USER = 'User';
  const RESOURCE_GROUP = 'Group';

  // Pseudo kind of the Plan page's filter: the entries to read first
  // (see needsAttention()).
  const FILTER_ATTENTION = 'attention';

  protected $stageOpID;
  protected $kind;
  protected $resourceType;
  protected $objectPHID;
  protected $status;
  protected $summary;
  protected $details;

  private $stageOp = self::ATTACHABLE;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'stageOpID' => 'uint32?',
        'kind' => 'text32',
        'resourceType' => 'text32',
        'objectPHID' => 'phid?',
        'status' => 'uint32',
        'summary' => 'text',
        'details' => 'text',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_stageop' => array(
          'columns' => array('stageOpID'),
        ),
        'key_kind' => array(
          'columns' => array('kind', 'id'),
        ),
        'key_object' => array(
          'columns' => array('objectPHID'),
        ),
      ),
    ) + parent::getConfiguration();
  }

  public static function getKindMap() {
    return array(
      self::KIND_USER_CREATE => pht('Create User'),
      self::KIND_USER_ADOPT => pht('Adopt User'),
      self::KIND_USER_REHIRE => pht('Rehire User'),
      self::KIND_USER_UPDATE => pht('Update User'),
      self::KIND_USER_DEACTIVATE => pht('Deactivate User'),
      self::KIND_USER_REACTIVATE => pht('Reactivate User'),
      self::KIND_USER_DELETE => pht('Delete User'),
      self::KIND_GROUP_CREATE => pht('Create Project'),
      self::KIND_GROUP_ADOPT => pht('Adopt Project'),
      self::KIND_GROUP_UPDATE => pht('Update Project'),
      self::KIND_GROUP_DELETE => pht('Delete Project'),
      self::KIND_GROUP_MEMBERS => pht('Project Members'),
      self::KIND_CONFLICT => pht('Conflict'),
    );
  }

  public static function getKindDescription($kind) {
    switch ($kind) {
      case self::KIND_USER_CREATE:
        return pht('New accounts.');
      case self::KIND_USER_ADOPT:
        return pht(
          'Existing accounts the service takes over (it manages them from '.
          'then on).');
      case self::KIND_USER_REHIRE:
        return pht(
          'Disabled accounts enabled again and taken over.');
      case self::KIND_USER_UPDATE:
        return pht('Changes to names and addresses of accounts.');
      case self::KIND_USER_DEACTIVATE:
        return pht(
          'Accounts disabled; their sessions and API tokens are revoked.');
      case self::KIND_USER_REACTIVATE:
        return pht('Accounts enabled again.');
      case self::KIND_USER_DELETE:
        return pht(
          'Accounts the identity provider deletes: disabled, their sessions '.
          'and API tokens revoked.');
      case self::KIND_GROUP_CREATE:
        return pht('New projects.');
      case self::KIND_GROUP_ADOPT:
        return pht('Existing projects the service takes over.');
      case self::KIND_GROUP_UPDATE:
        return pht('Projects renamed.');
      case self::KIND_GROUP_DELETE:
        return pht('Projects the identity provider deletes.');
      case self::KIND_GROUP_MEMBERS:
        return pht('Members added to and removed from projects.');
      case self::KIND_CONFLICT:
        return pht(
          'Requests the service refused: nothing of them is in the plan. '.
          'Resolve them here or in the identity provider.');
    }
    return null;
  }

  public static function getKindIcon($kind) {
    switch ($kind) {
      case self::KIND_USER_CREATE:
        return 'fa-user-plus green';
      case self::KIND_USER_ADOPT:
      case self::KIND_GROUP_ADOPT:
        return 'fa-link blue';
      case self::KIND_USER_REHIRE:
        return 'fa-undo blue';
      case self::KIND_USER_UPDATE:
      case self::KIND_GROUP_UPDATE:
        return 'fa-pencil blue';
      case self::KIND_USER_DEACTIVATE:
        return 'fa-user-times orange';
      case self::KIND_USER_REACTIVATE:
        return 'fa-user green';
      case self::KIND_USER_DELETE:
      case self::KIND_GROUP_DELETE:
        return 'fa-trash red';
      case self::KIND_GROUP_CREATE:
        return 'fa-briefcase green';
      case self::KIND_GROUP_MEMBERS:
        return 'fa-users blue';
      case self::KIND_CONFLICT:
        return 'fa-ban red';
    }
    return 'fa-question-circle grey';
  }

  /**
   * Kinds that make a new object: their object does not exist in
   * Phabricator before the plan is applied.
   */
  public static function getCreateKinds() {
    return array(
      self::KIND_USER_CREATE,
      self::KIND_GROUP_CREATE,
    );
  }

  /**
   * Kinds that take access away from an existing account.
   */
  public static function getDeactivationKinds() {
    return array(
      self::KIND_USER_DEACTIVATE,
      self::KIND_USER_DELETE,
    );
  }

  public function getKindName() {
    $kind = $this->getKind();
    return idx(self::getKindMap(), $kind, $kind);
  }

  public function isConflict() {
    return ($this->getKind() === self::KIND_CONFLICT);
  }

  public function getDecodedDetails() {
    return $this->decodeJSONColumn($this->getDetails());
  }

  /**
   * The derived username of a new account was taken, and the service used
   * another (with a suffix).
   */
  public function getUsernameTaken() {
    $details = $this->getDecodedDetails();
    if (!is_array($details)) {
      return null;
    }
    $taken = idx($details, 'usernameTaken');
    if (!is_string($taken) || !strlen($taken)) {
      return null;
    }
    return $taken;
  }

  /**
   * What a deactivation revokes, as the service counted it: sessions,
   * api_tokens, temporary_tokens. Empty when nothing.
   */
  public function getRevokedCounts() {
    $details = $this->getDecodedDetails();
    $revoked = is_array($details) ? idx($details, 'revoked') : null;
    if (!is_array($revoked)) {
      return array();
    }
    $counts = array();
    foreach (array('sessions', 'api_tokens', 'temporary_tokens') as $key) {
      $counts[$key] = (int)idx($revoked, $key, 0);
    }
    if (!array_filter($counts)) {
      return array();
    }
    return $counts;
  }

  /**
   * Entries an administrator should read before applying: refused requests,
   * accounts that get another username than the derived one, accounts
   * disabled, access revoked. The Plan page's "attention" filter selects the
   * same (PhabricatorScimPlanEntryQuery::withNeedsAttention()).
   */
  public function needsAttention() {
    if ($this->isConflict()) {
      return true;
    }
    if (in_array($this->getKind(), self::getDeactivationKinds(), true)) {
      return true;
    }
    if ($this->getUsernameTaken() !== null) {
      return true;
    }
    $details = $this->getDecodedDetails();
    return (is_array($details) && array_key_exists('revoked', $details));
  }

  public function attachStageOp(PhabricatorScimStageOp $op = null) {
    $this->stageOp = $op;
    return $this;
  }

  /**
   * @return PhabricatorScimStageOp|null The operation; null for a conflict.
   */
  public function getStageOp() {
    return $this->assertAttached($this->stageOp);
  }

}
