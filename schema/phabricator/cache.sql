-- Phabricator/Phorge `cache` application tables that phab-scim reads or writes.
-- Same columns, types, nullability, defaults, collations and keys as Phorge's own storage
-- (checked against the reference dump by scripts/schema-parity). Used by tests and the demo;
-- a real install already has these tables from `bin/storage upgrade`.

CREATE DATABASE IF NOT EXISTS `{$NAMESPACE}_cache` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `{$NAMESPACE}_cache`.`cache_general` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `cacheKeyHash` binary(12) NOT NULL,
  `cacheKey` varchar(128) NOT NULL,
  `cacheFormat` varchar(16) NOT NULL,
  `cacheData` longblob NOT NULL,
  `cacheCreated` int(10) unsigned NOT NULL,
  `cacheExpires` int(10) unsigned DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `key_cacheKeyHash` (`cacheKeyHash`),
  KEY `key_cacheCreated` (`cacheCreated`),
  KEY `key_ttl` (`cacheExpires`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
