#!/usr/bin/perl
# A session with Debian's Mail::IMAPClient (libmail-imapclient-perl)
# against certmail: ID (RFC 2971) before and after login, then what the
# steps named on the command line ask for.
#
# Usage: mailimapclient_session.pl HOST PORT USER PASSWORD [STEP...]
#
# Prints what the server answered, one line per step, and PASS at the
# end; a failed step dies (exit non-zero).
use strict;
use warnings;
use Mail::IMAPClient;

my ($host, $port, $user, $password, @steps) = @ARGV;
my $imap = Mail::IMAPClient->new(Server => $host, Port => $port, Timeout => 20)
  or die "connect: $@\n";

sub id {
    my ($version) = @_;
    my $lines = $imap->tag_and_run(qq{ID ("name" "mailimapclient-interop" "version" "$version")})
      or die "ID: " . $imap->LastError . "\n";
    my ($answer) = grep { /^\* ID / } @$lines;
    die "no * ID answer: @$lines\n" unless $answer;
    die "unexpected ID answer: $answer\n" unless $answer =~ /"name" "certmail" "version" "[^"]+" "revision" "[^"]+"/;
    $answer =~ s/\r?\n$//;
    print "ID: $answer\n";
}

die "ID not advertised\n" unless $imap->has_capability("ID");
id("1.0");
$imap->User($user);
$imap->Password($password);
$imap->login or die "login: " . $imap->LastError . "\n";
id("1.1");

$imap->logout;
print "PASS\n";
