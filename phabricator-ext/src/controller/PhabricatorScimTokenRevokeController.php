<?php

final class PhabricatorScimTokenRevokeController
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

    if ($token->getDateRevoked() !== null) {
      return $this->newDialog()
        ->setTitle(pht('Already Revoked'))
        ->appendParagraph(
          pht('Token %d has already been revoked.', $token->getID()))
        ->addCancelButton($cancel_uri);
    }

    if ($request->isFormPost()) {
      id(new PhabricatorScimTokenEngine())
        ->setViewer($viewer)
        ->revokeToken($token);

      return id(new AphrontRedirectResponse())->setURI($cancel_uri);
    }

    return $this->newDialog()
      ->setTitle(pht('Revoke Token %d?', $token->getID()))
      ->appendParagraph(
        pht(
          'The identity provider will no longer be able to provision users '.
          'and projects with token "%s". This takes effect within seconds '.
          'and can not be undone.',
          $token->getLabel()))
      ->addSubmitButton(pht('Revoke Token'))
      ->addCancelButton($cancel_uri);
  }

}
