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
  protected $dateStopped;
  // The replica's deprovision guard settings (deprovision_guard_share, _min,
  // _window_secs), published with its heartbeat for the Status page. Null for
  // replicas older than the guard's state on the Status page.
  protected $guardShare;
  protected $guardMin;
  protected $guardWindow;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'instanceKey' => 'text64',
        'hostname' => 'text255',
        'version' => 'text64',
        'dateStarted' => 'epoch',
        'dateStopped' => 'epoch?',
        'guardShare' => 'double?',
        'guardMin' => 'uint32?',
        'guardWindow' => 'uint32?',
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

  // A clean shutdown sets dateStopped; the next heartbeat under the same key
  // clears it.
  public function isStopped() {
    return ($this->getDateStopped() !== null);
  }

  public function isLive($now) {
    if ($this->isStopped()) {
      return false;
    }
    return ($this->getDateModified() >= ($now - self::LIVE_WINDOW));
  }

}
