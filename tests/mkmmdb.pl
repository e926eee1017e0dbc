#!/usr/bin/perl
# tests/mkmmdb.pl OUT [4] - write a small GeoIP2-Country-shaped .mmdb for t_geoip with Debian's
# libmaxmind-db-writer-perl (MaxMind::DB::Writer::Tree): documentation networks with countries.
#   192.0.2.0/24    country DE           198.51.100.0/24  country US (iso_code lower case: "us")
#   203.0.113.0/25  registered_country FR only (no "country")
#   203.0.113.128/25  a record with a country but no iso_code
#   2001:db8::/32   country JP           2001:db8:1::/48  country CH (more specific)
#   100.64.0.0/10   country "XYZ" (not two letters: must read as unknown)
# With "4": an IPv4-only database (ip_version 4) of the IPv4 networks only.
# Exit 0 on success; any failure dies with a message (the test reports it).
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift or die "usage: mkmmdb.pl OUT [4]\n";
my $v = (shift // '6') eq '4' ? 4 : 6;
my %types = (
  country => 'map', registered_country => 'map', iso_code => 'utf8_string',
  names => 'map', en => 'utf8_string', geoname_id => 'uint32',
);
my $tree = MaxMind::DB::Writer::Tree->new(
  ip_version => $v,
  record_size => 24,
  database_type => 'mxguard-Test-Country',
  languages => ['en'],
  description => { en => 'mxguard t_geoip fixture' },
  remove_reserved_networks => 0,   # all our networks are documentation ranges
  map_key_type_callback => sub { $types{ $_[0] } },
);
sub c { my ($cc, $name) = @_; return { iso_code => $cc, names => { en => $name } } }
$tree->insert_network('192.0.2.0/24', { country => c('DE', 'Germany') });
$tree->insert_network('198.51.100.0/24', { country => c('us', 'United States') });
$tree->insert_network('203.0.113.0/25', { registered_country => c('FR', 'France') });
$tree->insert_network('203.0.113.128/25', { country => { geoname_id => 42 } });
if ($v == 6) {
  $tree->insert_network('2001:db8::/32', { country => c('JP', 'Japan') });
  $tree->insert_network('2001:db8:1::/48', { country => c('CH', 'Switzerland') });
}
$tree->insert_network('100.64.0.0/10', { country => c('XYZ', 'Nowhere') });
open my $fh, '>:raw', $out or die "mkmmdb.pl: cannot create $out: $!\n";
$tree->write_tree($fh);
close $fh or die "mkmmdb.pl: cannot write $out: $!\n";
