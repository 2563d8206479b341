<?php

final class PhabricatorScimConfigOptions
  extends PhabricatorApplicationConfigOptions {

  public function getName() {
    return pht('SCIM Provisioning');
  }

  public function getDescription() {
    return pht('Configure SCIM provisioning tokens and the SCIM bot account.');
  }

  public function getIcon() {
    return 'fa-id-badge';
  }

  public function getGroup() {
    return 'apps';
  }

  public function getApplicationClassName() {
    return PhabricatorScimApplication::class;
  }

  public function getOptions() {
    return array(
      $this->newOption('scim.token-rotation-days', 'int', 90)
        ->setSummary(pht('Warn about SCIM tokens older than this.'))
        ->setDescription(
          pht(
            'SCIM tokens older than this many days are flagged on the '.
            'Status and Tokens pages of SCIM Provisioning so they are '.
            'rotated. Set to 0 to disable the warning.')),
      $this->newOption('scim.token-grace-hours', 'int', 24)
        ->setSummary(pht('How long a rotated SCIM token keeps working.'))
        ->setDescription(
          pht(
            'When a SCIM token is rotated, the old token keeps working for '.
            'this many hours so the identity provider can be updated. Set '.
            'to 0 to make the old token stop working immediately.')),
      $this->newOption('scim.bot-username', 'string', 'scim-bot')
        ->setSummary(pht('Username of the SCIM bot account.'))
        ->setDescription(
          pht(
            'SCIM tokens are credentials of this bot account, which is the '.
            'actor of every change the SCIM service makes. It is created '.
            'when the first token is issued, or reused if it exists.')),
      $this->newOption('scim.bot-email-domain', 'string', null)
        ->setSummary(pht('Email domain of the SCIM bot account.'))
        ->setDescription(
          pht(
            'The SCIM bot account is created with the verified email '.
            'address "<username>@<domain>". If unset, the host of '.
            '"phabricator.base-uri" is used, or "%s" if that is not set '.
            'either. The domain must be allowed by "auth.email-domains".',
            PhabricatorScimTokenEngine::PLACEHOLDER_DOMAIN)),
    );
  }

  public function validateOption(PhabricatorConfigOption $option, $value) {
    switch ($option->getKey()) {
      case 'scim.token-rotation-days':
      case 'scim.token-grace-hours':
        if ($value !== null && (int)$value < 0) {
          throw new PhabricatorConfigValidationException(
            pht('"%s" must not be negative.', $option->getKey()));
        }
        break;
      case 'scim.bot-username':
        if (!PhabricatorUser::validateUsername($value)) {
          throw new PhabricatorConfigValidationException(
            PhabricatorUser::describeValidUsername($value));
        }
        break;
    }
  }

}
