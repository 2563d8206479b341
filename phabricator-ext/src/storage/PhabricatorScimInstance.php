<?php

/**
 * Heartbeat of one running service replica (`scim_instance`). The service
 * updates `dateModified` every 15 seconds.
 */
final class PhabricatorScimInstance extends PhabricatorScimDAO {

  // A replica that has not written a heartbeat for this long is not running.
  const LIVE_WINDOW = 60;

  protected $instanceKey;
  protected $hostname;
  protected $version;
  protected $dateStarted;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'instanceKey' => 'text64',
        'hostname' => 'text255',
        'version' => 'text64',
        'dateStarted' => 'epoch',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_instance' => array(
          'columns' => array('instanceKey'),
          'unique' => true,
        ),
        'key_modified' => array(
          'columns' => array('dateModified'),
        ),
      ),
    ) + parent::getConfiguration();
  }

  public function isLive($now) {
    return ($this->getDateModified() >= ($now - self::LIVE_WINDOW));
  }

}
