-- Phabricator/Phorge `conduit` application tables that phab-scim reads or writes.
-- Same columns, types, nullability, defaults, collations and keys as Phorge's own storage
-- (checked against the reference dump by scripts/schema-parity). Used by tests and the demo;
-- a real install already has these tables from `bin/storage upgrade`.

CREATE DATABASE IF NOT EXISTS `{$NAMESPACE}_conduit` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{$NAMESPACE}_conduit`.`conduit_token` (
  `id` int(10) unsigned NOT NULL AUTO_INCREMENT,
  `objectPHID` varbinary(64) NOT NULL,
  `tokenType` varchar(32) NOT NULL,
  `token` varchar(32) NOT NULL,
  `expires` int(10) unsigned DEFAULT NULL,
  `dateCreated` int(10) unsigned NOT NULL,
  `dateModified` int(10) unsigned NOT NULL,
  `tokenName` varchar(64) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `key_token` (`token`),
  KEY `key_object` (`objectPHID`,`tokenType`),
  KEY `key_expires` (`expires`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
