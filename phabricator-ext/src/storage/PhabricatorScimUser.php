<?php

/**
 * A user account managed by SCIM (`scim_user`). Written by the service only.
 */
final class PhabricatorScimUser extends PhabricatorScimDAO {

  protected $userPHID;
  protected $userName;
  protected $externalID;
  protected $attributes;
  protected $version;
  protected $isDeprovisioned;
  protected $dateDeprovisioned;
  // When the service created the Phabricator account (null: adopted, or made
  // before this column existed). The deprovision guard does not count an
  // account deprovisioned within its window of this.
  protected $dateAccountCreated;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'userName' => 'sort128',
        'externalID' => 'text128?',
        'attributes' => 'text',
        'version' => 'uint32',
        'isDeprovisioned' => 'bool',
        'dateDeprovisioned' => 'epoch?',
        'dateAccountCreated' => 'epoch?',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_user' => array(
          'columns' => array('userPHID'),
          'unique' => true,
        ),
        'key_username' => array(
          'columns' => array('userName'),
          'unique' => true,
        ),
        'key_externalid' => array(
          'columns' => array('externalID'),
        ),
        'key_deprovisioned' => array(
          'columns' => array('isDeprovisioned', 'id'),
        ),
        // The deprovision guard counts users disabled within its window.
        'key_deprovisionedat' => array(
          'columns' => array('dateDeprovisioned'),
        ),
      ),
    ) + parent::getConfiguration();
  }

}
