<?php

abstract class PhabricatorScimController extends PhabricatorController {

  public function shouldRequireAdmin() {
    return true;
  }

  protected function buildSideNavView($selected = null) {
    $viewer = $this->getViewer();

    $nav = id(new AphrontSideNavFilterView())
      ->setBaseURI(new PhutilURI($this->getApplicationURI()));

    $nav->addLabel(pht('SCIM Provisioning'));
    $nav->addFilter(
      'status',
      pht('Status'),
      $this->getApplicationURI(),
      'fa-heartbeat');
    $nav->addFilter('log', pht('Sync Log'), null, 'fa-list-ul');
    $nav->addFilter('tokens', pht('Tokens'), null, 'fa-key');
    $nav->addFilter('drift', pht('Drift'), null, 'fa-random');
    $nav->addFilter('plan', pht('Plan'), null, 'fa-clipboard');
    $nav->addFilter(
      'plan/unclaimed',
      pht('Unclaimed Accounts'),
      null,
      'fa-user-times');

    if ($selected === 'log') {
      id(new PhabricatorScimEventSearchEngine())
        ->setViewer($viewer)
        ->addNavigationItems($nav->getMenu());
    }

    $nav->selectFilter($selected);

    return $nav;
  }

  protected function newScimPage($title, $selected, array $content) {
    $crumbs = $this->buildApplicationCrumbs()
      ->addTextCrumb($title)
      ->setBorder(true);

    $header = id(new PHUIHeaderView())
      ->setHeader($title)
      ->setHeaderIcon($this->getHeaderIcon($selected));

    $view = id(new PHUITwoColumnView())
      ->setHeader($header)
      ->setFooter($content);

    return $this->newPage()
      ->setTitle(array($title, pht('SCIM Provisioning')))
      ->setCrumbs($crumbs)
      ->setNavigation($this->buildSideNavView($selected))
      ->appendChild($view);
  }

  private function getHeaderIcon($selected) {
    $map = array(
      'status' => 'fa-heartbeat',
      'log' => 'fa-list-ul',
      'tokens' => 'fa-key',
      'drift' => 'fa-random',
      'plan' => 'fa-clipboard',
      'plan/unclaimed' => 'fa-user-times',
    );
    return idx($map, $selected, 'fa-id-badge');
  }

  /**
   * Render "3 hours ago"-style text for an epoch, with the full date as a
   * tooltip.
   */
  protected function renderAge($epoch) {
    return self::renderAgeTag($this->getViewer(), $epoch);
  }

  public static function renderAgeTag(PhabricatorUser $viewer, $epoch) {
    if (!$epoch) {
      return phutil_tag('em', array(), pht('Never'));
    }

    $now = PhabricatorTime::getNow();
    $delta = $now - $epoch;
    if ($delta >= 0) {
      $text = pht('%s ago', phutil_format_relative_time($delta));
    } else {
      $text = pht('in %s', phutil_format_relative_time(-$delta));
    }

    return javelin_tag(
      'span',
      array(
        'sigil' => 'has-tooltip',
        'meta' => array(
          'tip' => phabricator_datetime($epoch, $viewer),
        ),
      ),
      $text);
  }

  protected function renderCount($count, $color) {
    if (!$count) {
      return pht('%s', new PhutilNumber(0));
    }
    return id(new PHUITagView())
      ->setType(PHUITagView::TYPE_SHADE)
      ->setColor($color)
      ->setSlimShady(true)
      ->setName(pht('%s', new PhutilNumber($count)));
  }

  /**
   * What the rollout's phase means and what to do next, in one or two
   * sentences (the Plan and Status pages show it).
   *
   * @param PhabricatorScimRollout The rollout.
   * @param int Operations that failed to apply.
   */
  protected function renderRolloutPhaseDescription(
    PhabricatorScimRollout $rollout,
    $failed) {

    $apply = phutil_tag(
      'tt',
      array('style' => 'white-space: nowrap;'),
      'phab-scim apply');

    switch ($rollout->getPhase()) {
      case PhabricatorScimRollout::PHASE_STAGED:
        return pht(
          'Nothing has been written to Phabricator. The identity '.
          'provider\'s changes are recorded as a plan. Review the plan, '.
          'then run %s on the service host.',
          $apply);
      case PhabricatorScimRollout::PHASE_APPLYING:
        return pht(
          '%s is writing the plan to Phabricator. Until it is done, the '.
          'identity provider\'s writes are answered "503 Service '.
          'Unavailable" (identity providers retry them later).',
          $apply);
      case PhabricatorScimRollout::PHASE_APPLIED:
        if ($failed) {
          return pht(
            'The plan was applied, but %s operation(s) failed: see their '.
            'errors on the Plan page. The service now writes the identity '.
            'provider\'s changes to Phabricator directly.',
            new PhutilNumber($failed));
        }
        return pht(
          'The plan was applied. The service now writes the identity '.
          'provider\'s changes to Phabricator directly.');
    }

    return pht('Unknown phase "%s".', $rollout->getPhase());
  }

  /**
   * Operations of the staged rollout by state
   * (PhabricatorScimStageOp::STATE_* => count).
   */
  protected function loadStageOpCounts() {
    $table = new PhabricatorScimStageOp();
    $rows = queryfx_all(
      $table->establishConnection('r'),
      'SELECT state, COUNT(*) N FROM %R GROUP BY state',
      $table);
    $counts = array_fill_keys(
      array_keys(PhabricatorScimStageOp::getStateMap()),
      0);
    foreach ($rows as $row) {
      $counts[$row['state']] = (int)$row['N'];
    }
    return $counts;
  }

}
