<?php

/**
 * One row of the sync log (`scim_event`): a SCIM write or a rejected
 * request, written by the service in the request's own transaction.
 */
final class PhabricatorScimEvent extends PhabricatorScimDAO {

  const OUTCOME_OK = 'ok';
  const OUTCOME_ERROR = 'error';
  const OUTCOME_WARNING = 'warning';

  const RESOURCE_USER = 'User';
  const RESOURCE_GROUP = 'Group';

  // Pseudo resource type used by filters for rows with no resource type.
  const RESOURCE_NONE = 'none';

  protected $requestID;
  protected $tokenID;
  protected $method;
  protected $path;
  protected $resourceType;
  protected $objectPHID;
  protected $status;
  protected $outcome;
  protected $summary;
  protected $details;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'requestID' => 'text64',
        'tokenID' => 'uint32?',
        'method' => 'text16',
        'path' => 'text255',
        'resourceType' => 'text32?',
        'objectPHID' => 'phid?',
        'status' => 'uint32',
        'outcome' => 'text16',
        'summary' => 'text',
        'details' => 'text',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_created' => array(
          'columns' => array('dateCreated'),
        ),
        'key_object' => array(
          'columns' => array('objectPHID', 'dateCreated'),
        ),
        'key_outcome' => array(
          'columns' => array('outcome', 'dateCreated'),
        ),
      ),
    ) + parent::getConfiguration();
  }

  public static function getOutcomeMap() {
    return array(
      self::OUTCOME_OK => pht('OK'),
      self::OUTCOME_WARNING => pht('Warning'),
      self::OUTCOME_ERROR => pht('Error'),
    );
  }

  public static function getResourceTypeMap() {
    return array(
      self::RESOURCE_USER => pht('User'),
      self::RESOURCE_GROUP => pht('Group'),
      self::RESOURCE_NONE => pht('None'),
    );
  }

  public function getOutcomeName() {
    return idx(self::getOutcomeMap(), $this->getOutcome(), $this->getOutcome());
  }

  public function getOutcomeIcon() {
    switch ($this->getOutcome()) {
      case self::OUTCOME_OK:
        return 'fa-check-circle';
      case self::OUTCOME_WARNING:
        return 'fa-exclamation-triangle';
      default:
        return 'fa-times-circle';
    }
  }

  public function getOutcomeColor() {
    switch ($this->getOutcome()) {
      case self::OUTCOME_OK:
        return 'green';
      case self::OUTCOME_WARNING:
        return 'orange';
      default:
        return 'red';
    }
  }

  public function getDecodedDetails() {
    return $this->decodeJSONColumn($this->getDetails());
  }

}
