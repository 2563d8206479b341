<?php

/**
 * Asks the service to apply the staged plan, as `phab-scim apply` does. The
 * service's background loop (every 15 seconds, on one replica) claims the
 * request and replays the plan with its own database account; the Plan page
 * shows the progress. Nothing here writes Phabricator's tables.
 */
final class PhabricatorScimPlanApplyController
  extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $viewer = $this->getViewer();
    $cancel_uri = $this->getApplicationURI('plan/');

    $rollout = PhabricatorScimRolloutQuery::loadCurrent($viewer);
    if (!$rollout ||
        $rollout->getPhase() === PhabricatorScimRollout::PHASE_APPLIED) {
      return $this->newDialog()
        ->setTitle(pht('Nothing to Apply'))
        ->appendParagraph(
          pht('There is no staged rollout waiting to be applied.'))
        ->addCancelButton($cancel_uri);
    }

    if ($rollout->isApplyRequested()) {
      return $this->newDialog()
        ->setTitle(pht('Already Requested'))
        ->appendParagraph(
          pht(
            'Applying the plan was requested %s; the service starts within '.
            '15 seconds.',
            phabricator_datetime($rollout->getDateApplyRequested(), $viewer)))
        ->addCancelButton($cancel_uri);
    }

    if ($request->isFormPost()) {
      $conn = $rollout->establishConnection('w');
      queryfx(
        $conn,
        'UPDATE %R SET applyRequestedBy = %s, dateApplyRequested = %d,
          dateModified = %d WHERE id = %d AND phase != %s',
        $rollout,
        $viewer->getPHID(),
        PhabricatorTime::getNow(),
        PhabricatorTime::getNow(),
        $rollout->getID(),
        PhabricatorScimRollout::PHASE_APPLIED);
      return id(new AphrontRedirectResponse())->setURI($cancel_uri);
    }

    return $this->newDialog()
      ->setTitle(pht('Apply the Plan?'))
      ->appendParagraph(
        pht(
          'The service writes the plan to Phabricator: every pending '.
          'operation, in the order the identity provider made them, each as '.
          'a live request would have written it. Accounts are created, '.
          'adopted, updated and deactivated (their sessions end), projects '.
          'and memberships change. Then the service writes the identity '.
          'provider\'s changes directly.'))
      ->appendParagraph(
        pht(
          'It starts within 15 seconds. A refusal (a conflict that appeared '.
          'since, the deprovision guard) stops it at that operation, shown '.
          'here as failed; fix the cause and apply again. It is the same as '.
          'running "phab-scim apply" on the service host.'))
      ->addSubmitButton(pht('Apply Plan'))
      ->addCancelButton($cancel_uri);
  }

}
