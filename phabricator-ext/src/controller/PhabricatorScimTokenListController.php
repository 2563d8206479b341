<?php

final class PhabricatorScimTokenListController
  extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $viewer = $this->getViewer();
    $now = PhabricatorTime::getNow();

    $tokens = id(new PhabricatorScimTokenQuery())
      ->setViewer($viewer)
      ->execute();

    $issuer_phids = array_filter(mpull($tokens, 'getIssuedByPHID'));
    $handles = $viewer->loadHandles($issuer_phids);

    $rotation_days = PhabricatorEnv::getEnvConfig('scim.token-rotation-days');

    $rows = array();
    $row_classes = array();
    $due = array();
    foreach ($tokens as $token) {
      $state = $token->getState($now);
      $usable = $token->isUsable($now);
      $is_due = $token->isDueForRotation($now);
      if ($is_due) {
        $due[] = $token;
      }

      $state_tag = id(new PHUITagView())
        ->setType(PHUITagView::TYPE_SHADE)
        ->setColor(PhabricatorScimToken::getStateColor($state))
        ->setName(PhabricatorScimToken::getStateName($state));

      $bot = $token->getBot();
      if ($bot) {
        $bot_link = phutil_tag(
          'a',
          array(
            'href' => '/p/'.$bot->getUsername().'/',
          ),
          $bot->getUsername());
        if ($bot->getIsDisabled()) {
          $bot_link = array($bot_link, ' ', pht('(disabled)'));
        }
      } else {
        $bot_link = phutil_tag('em', array(), pht('Deleted bot'));
      }

      $age = $this->renderAge($token->getDateCreated());
      if ($is_due) {
        $age = array(
          id(new PHUIIconView())->setIcon('fa-exclamation-triangle', 'orange'),
          ' ',
          $age,
        );
      }

      if ($token->getDateRevoked() !== null) {
        $ends = pht(
          'Revoked %s',
          phabricator_datetime($token->getDateRevoked(), $viewer));
      } else if ($token->getDateExpires() !== null) {
        $ends = phabricator_datetime($token->getDateExpires(), $viewer);
      } else {
        $ends = null;
      }

      $actions = array();
      if ($usable) {
        $actions[] = id(new PHUIButtonView())
          ->setTag('a')
          ->setColor(PHUIButtonView::GREY)
          ->setSize(PHUIButtonView::SMALL)
          ->setIcon('fa-refresh')
          ->setText(pht('Rotate'))
          ->setWorkflow(true)
          ->setHref(
            $this->getApplicationURI('tokens/'.$token->getID().'/rotate/'));
        $actions[] = ' ';
      }
      if ($token->getDateRevoked() === null) {
        $actions[] = id(new PHUIButtonView())
          ->setTag('a')
          ->setColor(PHUIButtonView::RED)
          ->setSize(PHUIButtonView::SMALL)
          ->setIcon('fa-times')
          ->setText(pht('Revoke'))
          ->setWorkflow(true)
          ->setHref(
            $this->getApplicationURI('tokens/'.$token->getID().'/revoke/'));
      }

      $issuer = $token->getIssuedByPHID();
      if ($issuer) {
        $issuer = $handles[$issuer]->renderLink();
      } else {
        $issuer = phutil_tag('em', array(), pht('Command Line'));
      }

      $rows[] = array(
        $token->getID(),
        $token->getLabel(),
        $bot_link,
        $issuer,
        $age,
        $this->renderAge($token->getDateLastUsed()),
        $state_tag,
        $ends,
        $actions,
      );

      $row_classes[] = $usable ? null : 'disabled';
    }

    $table = id(new AphrontTableView($rows))
      ->setRowClasses($row_classes)
      ->setNoDataString(
        pht('No SCIM token has been issued yet.'))
      ->setHeaders(
        array(
          pht('ID'),
          pht('Label'),
          pht('Bot'),
          pht('Issued By'),
          pht('Age'),
          pht('Last Used'),
          pht('State'),
          pht('Ends'),
          null,
        ))
      ->setColumnClasses(
        array(
          'n',
          'pri',
          null,
          null,
          null,
          null,
          null,
          null,
          'right wide',
        ));

    $header = id(new PHUIHeaderView())
      ->setHeader(pht('Tokens'))
      ->addActionLink(
        id(new PHUIButtonView())
          ->setTag('a')
          ->setIcon('fa-plus')
          ->setText(pht('Issue Token'))
          ->setWorkflow(true)
          ->setHref($this->getApplicationURI('tokens/issue/')));

    $box = id(new PHUIObjectBoxView())
      ->setHeader($header)
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->setTable($table);

    $content = array();

    if ($due) {
      $content[] = id(new PHUIInfoView())
        ->setSeverity(PHUIInfoView::SEVERITY_WARNING)
        ->setTitle(pht('Tokens due for rotation'))
        ->appendChild(
          pht(
            '%s token(s) are older than the rotation period of %s day(s) '.
            '("%s"). Rotate them: the old token keeps working for %s '.
            'hour(s), long enough to update the identity provider.',
            phutil_count($due),
            new PhutilNumber($rotation_days),
            'scim.token-rotation-days',
            new PhutilNumber(
              PhabricatorEnv::getEnvConfig('scim.token-grace-hours'))));
    }

    $content[] = id(new PHUIInfoView())
      ->setSeverity(PHUIInfoView::SEVERITY_NOTICE)
      ->appendChild(
        pht(
          'The identity provider authenticates to the SCIM service at %s '.
          'with one of these tokens, as the bot account. A token is shown '.
          'once, when it is issued; only a hash of it is stored.',
          phutil_tag(
            'tt',
            array(),
            PhabricatorScimApplication::getScimEndpointURI())));

    $content[] = $box;

    return $this->newScimPage(pht('Tokens'), 'tokens', $content);
  }

}
