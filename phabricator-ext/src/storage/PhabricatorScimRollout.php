<?php

/**
 * The staged rollout's state (`scim_rollout`, one row, written by the
 * service). While it is staged, the identity provider's writes become
 * operations (@{class:PhabricatorScimStageOp}) and plan entries
 * (@{class:PhabricatorScimPlanEntry}) instead of changes to Phabricator;
 * `phab-scim apply` replays them.
 */
final class PhabricatorScimRollout extends PhabricatorScimDAO {

  // The identity provider's writes become plan entries.
  const PHASE_STAGED = 'staged';
  // "phab-scim apply" is running; the identity provider's writes get 503.
  const PHASE_APPLYING = 'applying';
  // Done: the service writes Phabricator directly.
  const PHASE_APPLIED = 'applied';

  protected $phase;
  protected $dateStaged;
  protected $dateApplyStarted;
  protected $dateApplied;
  // An administrator's Apply on the Plan page: the service's background loop
  // claims it (clearing the date) and applies the plan, as `phab-scim apply`.
  protected $applyRequestedBy;
  protected $dateApplyRequested;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'phase' => 'text16',
        'dateStaged' => 'epoch',
        'dateApplyStarted' => 'epoch?',
        'dateApplied' => 'epoch?',
        'applyRequestedBy' => 'phid?',
        'dateApplyRequested' => 'epoch?',
      ),
      self::CONFIG_KEY_SCHEMA => array(),
    ) + parent::getConfiguration();
  }

  public function isApplyRequested() {
    return ($this->getDateApplyRequested() !== null);
  }

  public static function getPhaseMap() {
    return array(
      self::PHASE_STAGED => pht('Staged'),
      self::PHASE_APPLYING => pht('Applying'),
      self::PHASE_APPLIED => pht('Applied'),
    );
  }

  public function getPhaseName() {
    $phase = $this->getPhase();
    return idx(self::getPhaseMap(), $phase, $phase);
  }

  public function getPhaseIcon() {
    switch ($this->getPhase()) {
      case self::PHASE_STAGED:
        return 'fa-pause-circle';
      case self::PHASE_APPLYING:
        return 'fa-cog';
      case self::PHASE_APPLIED:
        return 'fa-check-circle';
    }
    return 'fa-question-circle';
  }

  public function getPhaseColor() {
    switch ($this->getPhase()) {
      case self::PHASE_STAGED:
        return PHUITagView::COLOR_BLUE;
      case self::PHASE_APPLYING:
        return PHUITagView::COLOR_ORANGE;
      case self::PHASE_APPLIED:
        return PHUITagView::COLOR_GREEN;
    }
    return PHUITagView::COLOR_GREY;
  }

  public function renderPhaseTag() {
    return id(new PHUITagView())
      ->setType(PHUITagView::TYPE_SHADE)
      ->setColor($this->getPhaseColor())
      ->setIcon($this->getPhaseIcon())
      ->setName($this->getPhaseName());
  }

}
