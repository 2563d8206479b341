<?php

/**
 * One SCIM write the identity provider made during a staged rollout
 * (`scim_stageop`), kept to be replayed by `phab-scim apply`. Written by the
 * service only; its plan entries (@{class:PhabricatorScimPlanEntry}) say what
 * it would do.
 */
final class PhabricatorScimStageOp extends PhabricatorScimDAO {

  const STATE_STAGED = 'staged';
  const STATE_APPLIED = 'applied';
  const STATE_FAILED = 'failed';

  const OPERATION_USER_CREATE = 'user.create';
  const OPERATION_USER_REPLACE = 'user.replace';
  const OPERATION_USER_PATCH = 'user.patch';
  const OPERATION_USER_DELETE = 'user.delete';
  const OPERATION_GROUP_CREATE = 'group.create';
  const OPERATION_GROUP_REPLACE = 'group.replace';
  const OPERATION_GROUP_PATCH = 'group.patch';
  const OPERATION_GROUP_DELETE = 'group.delete';

  protected $opKey;
  protected $operation;
  protected $objectPHID;
  protected $request;
  protected $requestID;
  protected $tokenID;
  protected $actorPHID;
  protected $remoteAddr;
  protected $state;
  protected $error;
  protected $dateApplied;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'opKey' => 'text32',
        'operation' => 'text32',
        'objectPHID' => 'phid',
        'request' => 'text',
        'requestID' => 'text64',
        'tokenID' => 'uint32?',
        'actorPHID' => 'phid',
        'remoteAddr' => 'text64',
        'state' => 'text16',
        'error' => 'text?',
        'dateApplied' => 'epoch?',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_opkey' => array(
          'columns' => array('opKey'),
          'unique' => true,
        ),
        'key_state' => array(
          'columns' => array('state', 'id'),
        ),
      ),
    ) + parent::getConfiguration();
  }

  public static function getOperationMap() {
    return array(
      self::OPERATION_USER_CREATE => pht('Create User'),
      self::OPERATION_USER_REPLACE => pht('Replace User'),
      self::OPERATION_USER_PATCH => pht('Patch User'),
      self::OPERATION_USER_DELETE => pht('Delete User'),
      self::OPERATION_GROUP_CREATE => pht('Create Group'),
      self::OPERATION_GROUP_REPLACE => pht('Replace Group'),
      self::OPERATION_GROUP_PATCH => pht('Patch Group'),
      self::OPERATION_GROUP_DELETE => pht('Delete Group'),
    );
  }

  /**
   * The states as the Plan page filters them: an operation still staged is
   * "pending".
   */
  public static function getStateMap() {
    return array(
      self::STATE_STAGED => pht('Pending'),
      self::STATE_APPLIED => pht('Applied'),
      self::STATE_FAILED => pht('Failed'),
    );
  }

  public static function getStateName($state) {
    return idx(self::getStateMap(), $state, $state);
  }

  public static function getStateColor($state) {
    switch ($state) {
      case self::STATE_STAGED:
        return PHUITagView::COLOR_BLUE;
      case self::STATE_APPLIED:
        return PHUITagView::COLOR_GREEN;
      case self::STATE_FAILED:
        return PHUITagView::COLOR_RED;
    }
    return PHUITagView::COLOR_GREY;
  }

  public static function getStateIcon($state) {
    switch ($state) {
      case self::STATE_STAGED:
        return 'fa-clock-o';
      case self::STATE_APPLIED:
        return 'fa-check';
      case self::STATE_FAILED:
        return 'fa-times';
    }
    return 'fa-question';
  }

  public function getOperationName() {
    $operation = $this->getOperation();
    return idx(self::getOperationMap(), $operation, $operation);
  }

}
