<?php

final class PhabricatorScimApplication extends PhabricatorApplication {

  public function getName() {
    return pht('SCIM Provisioning');
  }

  public function getShortDescription() {
    return pht('Users and Projects from your Identity Provider');
  }

  public function getBaseURI() {
    return '/scim/';
  }

  public function getIcon() {
    return 'fa-id-badge';
  }

  public function getApplicationGroup() {
    return self::GROUP_ADMIN;
  }

  public function canUninstall() {
    return true;
  }

  public function getRoutes() {
    // NOTE: "/scim/v2/" belongs to the SCIM service (the reverse proxy sends
    // it there); never route anything under it here.
    return array(
      '/scim/' => array(
        '' => 'PhabricatorScimStatusController',
        'log/(?:query/(?P<queryKey>[^/]+)/)?'
          => 'PhabricatorScimEventListController',
        'tokens/' => array(
          '' => 'PhabricatorScimTokenListController',
          'issue/' => 'PhabricatorScimTokenIssueController',
          '(?P<id>[1-9]\d*)/rotate/' => 'PhabricatorScimTokenRotateController',
          '(?P<id>[1-9]\d*)/revoke/' => 'PhabricatorScimTokenRevokeController',
        ),
        'drift/' => 'PhabricatorScimDriftListController',
        'plan/' => array(
          '' => 'PhabricatorScimPlanController',
          'unclaimed/' => 'PhabricatorScimPlanUnclaimedController',
          'apply/' => 'PhabricatorScimPlanApplyController',
        ),
      ),
    );
  }

  /**
   * The URL to paste into the identity provider as the SCIM base URL.
   */
  public static function getScimEndpointURI() {
    return PhabricatorEnv::getProductionURI('/scim/v2');
  }

}
