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

}
