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

for my $step (@steps) {
    if ($step eq "compress") {
        # RFC 4978: Mail::IMAPClient compresses with zlib at
        # Z_BEST_SPEED and flushes each command with Z_PARTIAL_FLUSH.
        my $caps = join " ", @{ $imap->capability };
        die "COMPRESS=DEFLATE not offered: $caps\n" unless $caps =~ /\bCOMPRESS=DEFLATE\b/;
        $imap->compress or die "COMPRESS: " . $imap->LastError . "\n";
        $imap->select("INBOX") or die "SELECT: " . $imap->LastError . "\n";
        my @msgs = $imap->messages or die "no messages: " . $imap->LastError . "\n";
        for my $m (@msgs) {
            my $body = $imap->message_string($m) or die "FETCH $m: " . $imap->LastError . "\n";
            print "compressed FETCH $m: " . length($body) . " bytes\n";
        }
        my $msg = "From: a\@example.org\r\nSubject: appended compressed\r\n\r\n" . ("line of text\r\n" x 500);
        $imap->append_string("INBOX", $msg) or die "APPEND: " . $imap->LastError . "\n";
        my $found = $imap->search("SUBJECT", "appended") or die "SEARCH: " . $imap->LastError . "\n";
        die "SEARCH found @$found\n" unless @$found == 1;
        my $last = $imap->message_string($found->[0]);
        die "appended message came back different\n" unless $last eq $msg;
        print "compressed APPEND, SEARCH and FETCH: ok\n";
    } elsif ($step eq "quota") {
        # RFC 9208: the limits the test set with `certmail user quota`.
        my $caps = join " ", @{ $imap->capability };
        die "QUOTA not offered: $caps\n" unless $caps =~ /\bQUOTA\b/ && $caps =~ /\bQUOTA=RES-STORAGE\b/;
        my $lines = $imap->getquotaroot("INBOX") or die "GETQUOTAROOT: " . $imap->LastError . "\n";
        my ($root) = grep { /^\* QUOTAROOT / } @$lines;
        my ($quota) = grep { /^\* QUOTA / } @$lines;
        die "GETQUOTAROOT answered: @$lines\n" unless $root && $quota && $quota =~ /STORAGE (\d+) 1024 MESSAGE (\d+) 1000/;
        $quota =~ s/\r?\n$//;
        print "quota: $quota\n";
    } elsif ($step eq "sort") {
        # RFC 5256 through the client's sort() and thread() (its THREAD
        # parser is Mail::IMAPClient::Thread); UIDs, the client's default.
        my $caps = join " ", @{ $imap->capability };
        die "SORT/THREAD not offered: $caps\n" unless $caps =~ /\bSORT\b/ && $caps =~ /\bTHREAD=REFERENCES\b/;
        $imap->select("INBOX") or die "SELECT: " . $imap->LastError . "\n";
        my $sorted = $imap->sort("SUBJECT", "UTF-8", "ALL") or die "SORT: " . $imap->LastError . "\n";
        print "sort subject: @$sorted\n";
        my $rsorted = $imap->sort("REVERSE SUBJECT", "UTF-8", "ALL") or die "SORT: " . $imap->LastError . "\n";
        print "sort reverse subject: @$rsorted\n";
        for my $algo ("ORDEREDSUBJECT", "REFERENCES") {
            my $t = $imap->thread($algo, "UTF-8", "ALL") or die "THREAD $algo: " . $imap->LastError . "\n";
            my $show;
            $show = sub { my $x = shift; ref $x ? "(" . join(" ", map { $show->($_) } @$x) . ")" : $x };
            print "thread " . lc($algo) . ": " . join("", map { $show->($_) } @$t) . "\n";
        }
    } else {
        die "unknown step $step\n";
    }
}

$imap->logout;
print "PASS\n";
