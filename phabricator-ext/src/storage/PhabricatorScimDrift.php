<?php

/**
 * A finding of the service's drift check (`scim_drift`).
 */
final class PhabricatorScimDrift extends PhabricatorScimDAO {

  const TYPE_PROJECT_RENAMED = 'project-renamed';
  const TYPE_PROJECT_MEMBERS = 'project-members';
  const TYPE_USER_REENABLED = 'user-reenabled';
  const TYPE_PHANTOM_ACCOUNT = 'phantom-account';

  protected $driftType;
  protected $objectPHID;
  protected $summary;
  protected $details;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'driftType' => 'text32',
        'summary' => 'text',
        'details' => 'text',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_finding' => array(
          'columns' => array('driftType', 'objectPHID'),
          'unique' => true,
        ),
      ),
    ) + parent::getConfiguration();
  }

  public static function getDriftTypeMap() {
    return array(
      self::TYPE_PROJECT_RENAMED => pht('Project Renamed'),
      self::TYPE_PROJECT_MEMBERS => pht('Project Members Changed'),
      self::TYPE_USER_REENABLED => pht('User Re-enabled'),
      self::TYPE_PHANTOM_ACCOUNT => pht('Unmanaged Account'),
    );
  }

  public static function getDriftTypeDescription($type) {
    switch ($type) {
      case self::TYPE_PROJECT_RENAMED:
        return pht(
          'A SCIM-managed project was renamed by hand; the identity '.
          'provider will rename it back on its next push.');
      case self::TYPE_PROJECT_MEMBERS:
        return pht(
          'Members of a SCIM-managed project were changed by hand.');
      case self::TYPE_USER_REENABLED:
        return pht(
          'A user deprovisioned through SCIM was enabled again by hand.');
      case self::TYPE_PHANTOM_ACCOUNT:
        return pht(
          'An active account that the identity provider does not manage.');
    }
    return null;
  }

  public function getDriftTypeName() {
    $type = $this->getDriftType();
    return idx(self::getDriftTypeMap(), $type, $type);
  }

  public function getDecodedDetails() {
    return $this->decodeJSONColumn($this->getDetails());
  }

}
