<?php

final class PhabricatorScimTokenRotateController
  extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $viewer = $this->getViewer();
    $cancel_uri = $this->getApplicationURI('tokens/');

    $token = id(new PhabricatorScimTokenQuery())
      ->setViewer($viewer)
      ->withIDs(array($request->getURIData('id')))
      ->requireCapabilities(
        array(
          PhabricatorPolicyCapability::CAN_VIEW,
          PhabricatorPolicyCapability::CAN_EDIT,
        ))
      ->executeOne();
    if (!$token) {
      return new Aphront404Response();
    }

    $now = PhabricatorTime::getNow();
    if (!$token->isUsable($now)) {
      return $this->newDialog()
        ->setTitle(pht('Token Not Usable'))
        ->appendParagraph(
          pht(
            'Token %d is %s; only a usable token can be rotated.',
            $token->getID(),
            PhabricatorScimToken::getStateName($token->getState($now))))
        ->addCancelButton($cancel_uri);
    }

    id(new PhabricatorAuthSessionEngine())->requireHighSecuritySession(
      $viewer,
      $request,
      $cancel_uri);

    $grace_hours = (int)PhabricatorEnv::getEnvConfig('scim.token-grace-hours');

    $errors = array();
    if ($request->isFormPost()) {
      try {
        list($new, $plaintext) = id(new PhabricatorScimTokenEngine())
          ->setViewer($viewer)
          ->rotateToken(
            $token,
            $grace_hours * phutil_units('1 hour in seconds'));

        $dialog = $this->newDialog()->setTitle(pht('Token Rotated'));
        if ($grace_hours) {
          $dialog->appendParagraph(
            pht(
              'Token %d keeps working until %s.',
              $token->getID(),
              phabricator_datetime($token->getDateExpires(), $viewer)));
        } else {
          $dialog->appendParagraph(
            pht('Token %d no longer works.', $token->getID()));
        }

        return PhabricatorScimTokenIssueController::buildNewTokenDialog(
          $dialog,
          $new,
          $plaintext,
          $cancel_uri);
      } catch (PhabricatorScimTokenException $ex) {
        $errors[] = $ex->getMessage();
      }
    }

    if ($grace_hours) {
      $grace = pht(
        'The old token keeps working for %s hour(s) (%s), so you can update '.
        'the identity provider.',
        new PhutilNumber($grace_hours),
        'scim.token-grace-hours');
    } else {
      $grace = pht('The old token stops working immediately.');
    }

    return $this->newDialog()
      ->setTitle(pht('Rotate Token %d?', $token->getID()))
      ->setErrors($errors)
      ->appendParagraph(
        pht(
          'Issue a new token for "%s" to replace this one.',
          $token->getLabel()))
      ->appendParagraph($grace)
      ->addSubmitButton(pht('Rotate Token'))
      ->addCancelButton($cancel_uri);
  }

}
