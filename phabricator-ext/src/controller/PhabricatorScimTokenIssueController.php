<?php

final class PhabricatorScimTokenIssueController
  extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $viewer = $this->getViewer();
    $cancel_uri = $this->getApplicationURI('tokens/');

    id(new PhabricatorAuthSessionEngine())->requireHighSecuritySession(
      $viewer,
      $request,
      $cancel_uri);

    $label = $request->getStr('label', pht('Identity Provider'));
    $errors = array();
    $e_label = true;

    if ($request->isFormPost()) {
      $label = trim($label);
      if (!strlen($label)) {
        $errors[] = pht('Give the token a label, such as the name of the '.
          'identity provider that will use it.');
        $e_label = pht('Required');
      } else if (strlen($label) > 128) {
        $errors[] = pht('Labels may be at most 128 bytes long.');
        $e_label = pht('Too Long');
      }

      if (!$errors) {
        try {
          list($token, $plaintext) = id(new PhabricatorScimTokenEngine())
            ->setViewer($viewer)
            ->issueToken($label);

          return $this->newTokenDialog(
            pht('Token Issued'),
            $token,
            $plaintext,
            $cancel_uri);
        } catch (PhabricatorScimTokenException $ex) {
          $errors[] = $ex->getMessage();
        }
      }
    }

    $form = id(new AphrontFormView())
      ->setViewer($viewer)
      ->appendChild(
        id(new AphrontFormTextControl())
          ->setName('label')
          ->setLabel(pht('Label'))
          ->setValue($label)
          ->setError($e_label));

    return $this->newDialog()
      ->setTitle(pht('Issue SCIM Token'))
      ->setWidth(AphrontDialogView::WIDTH_FORM)
      ->setErrors($errors)
      ->appendParagraph(
        pht(
          'Issue a token for the identity provider. It is a credential of '.
          'the bot account "%s", which is created if it does not exist.',
          PhabricatorScimTokenEngine::getBotUsername()))
      ->appendForm($form)
      ->addSubmitButton(pht('Issue Token'))
      ->addCancelButton($cancel_uri);
  }

  /**
   * Show a new token, once. It is not stored anywhere in plaintext.
   */
  public static function buildNewTokenDialog(
    AphrontDialogView $dialog,
    PhabricatorScimToken $token,
    $plaintext,
    $done_uri) {

    return $dialog
      ->setWidth(AphrontDialogView::WIDTH_FORM)
      ->appendParagraph(
        pht(
          'Token %d ("%s") has been issued. Copy it into the identity '.
          'provider now: it will not be shown again.',
          $token->getID(),
          $token->getLabel()))
      ->appendCommand($plaintext)
      ->appendParagraph(
        pht(
          'SCIM base URL: %s',
          phutil_tag(
            'tt',
            array(),
            PhabricatorScimApplication::getScimEndpointURI())))
      ->addCancelButton($done_uri, pht('Done'));
  }

  private function newTokenDialog($title, $token, $plaintext, $done_uri) {
    return self::buildNewTokenDialog(
      $this->newDialog()->setTitle($title),
      $token,
      $plaintext,
      $done_uri);
  }

}
