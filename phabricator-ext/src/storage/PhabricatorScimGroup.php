<?php

/**
 * A project managed by SCIM (`scim_group`). Written by the service only.
 */
final class PhabricatorScimGroup extends PhabricatorScimDAO {

  protected $projectPHID;
  protected $displayName;
  protected $externalID;
  protected $attributes;
  protected $version;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'displayName' => 'sort128',
        'externalID' => 'text128?',
        'attributes' => 'text',
        'version' => 'uint32',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_project' => array(
          'columns' => array('projectPHID'),
          'unique' => true,
        ),
        'key_displayname' => array(
          'columns' => array('displayName'),
          'unique' => true,
        ),
        'key_externalid' => array(
          'columns' => array('externalID'),
        ),
      ),
    ) + parent::getConfiguration();
  }

}
