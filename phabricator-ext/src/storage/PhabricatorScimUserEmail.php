<?php

/**
 * The email values the identity provider sent for a SCIM user
 * (`scim_useremail`), so SCIM email filters use an index. Written by the
 * service only.
 */
final class PhabricatorScimUserEmail extends PhabricatorScimDAO {

  protected $userPHID;
  protected $address;
  protected $emailType;
  protected $isPrimary;

  protected function getConfiguration() {
    return array(
      self::CONFIG_TIMESTAMPS => false,
      self::CONFIG_COLUMN_SCHEMA => array(
        'address' => 'sort128',
        'emailType' => 'text32?',
        'isPrimary' => 'bool',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_user' => array(
          'columns' => array('userPHID'),
        ),
        'key_address' => array(
          'columns' => array('address'),
        ),
      ),
    ) + parent::getConfiguration();
  }

}
