<?php

namespace Herald\Laravel\Tests;

use Herald\Laravel\PusherSignature;
use PHPUnit\Framework\TestCase as PHPUnitTestCase;
use Symfony\Component\HttpKernel\Exception\BadRequestHttpException;

/**
 * The signatures against published test vectors: the Pusher docs' worked examples
 * (docs/channels/library_auth_reference/auth-signatures.md) and pusher-http-php's own unit
 * tests (AuthorizeChannelTest, CryptoTest), whose answers this class must reproduce without
 * that library.
 */
class PusherSignatureTest extends PHPUnitTestCase
{
    private function docs(?string $masterKey = null): PusherSignature
    {
        return new PusherSignature('278d425bdf160c739803', '7ad3773142a6692b25b8', $masterKey);
    }

    public function test_the_docs_private_channel_example()
    {
        $this->assertSame(
            ['auth' => '278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4'],
            $this->docs()->authorizeChannel('private-foobar', '1234.1234')
        );
    }

    public function test_the_docs_presence_channel_example()
    {
        // The docs' published signature was computed over "Mr. Pusher": their text was renamed
        // to "Mr. Channels" without recomputing it. The renamed string's signature was
        // computed with `openssl dgst -sha256 -hmac`.
        foreach ([
            'Mr. Pusher' => 'afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c',
            'Mr. Channels' => '31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80',
        ] as $name => $expected) {
            $channelData = '{"user_id":10,"user_info":{"name":"'.$name.'"}}';

            $this->assertSame([
                'auth' => '278d425bdf160c739803:'.$expected,
                'channel_data' => $channelData,
            ], $this->docs()->authorizeChannel('presence-foobar', '1234.1234', $channelData));
        }
    }

    public function test_the_docs_user_authentication_example()
    {
        $this->assertSame([
            'auth' => '278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba',
            'user_data' => '{"id":"12345"}',
        ], $this->docs()->authenticateUser('1234.1234', ['id' => '12345']));
    }

    public function test_pusher_http_phps_authorize_channel_vectors()
    {
        $signature = new PusherSignature('thisisaauthkey', 'thisisasecret');

        $this->assertSame(
            '{"auth":"thisisaauthkey:751ccc12aeaa79d46f7c199bced5fa47527d3480b51fe61a0bd10438241bd52d"}',
            json_encode($signature->authorizeChannel('testing_pusher-php', '1.1'), JSON_UNESCAPED_SLASHES)
        );
        $this->assertSame(
            '{"auth":"thisisaauthkey:d1c20ad7684c172271f92c108e11b45aef07499b005796ae1ec5beb924f361c4"}',
            json_encode($signature->authorizeChannel('-azAZ9_=@,.;', '45055.28877557'), JSON_UNESCAPED_SLASHES)
        );
        $this->assertSame(
            '{"auth":"thisisaauthkey:3b3f1dcc4d7d2f95dd10ed05562397b3287b102d4cccfacbf30eed2f1ffa3d69","channel_data":"{\"user_id\": \"123\"}"}',
            json_encode($signature->authorizeChannel('-azAZ9_=@,.;', '45055.28877557', '{"user_id": "123"}'), JSON_UNESCAPED_SLASHES)
        );
    }

    public function test_pusher_http_phps_shared_secret_vector()
    {
        $signature = new PusherSignature('key', 'secret', base64_encode(str_repeat('a', 32)));

        $this->assertSame(
            'Rp+wpkNpL89qhqco1JkIG31AVXyU8PUVJBr1B2MvdoA=',
            $signature->authorizeChannel('private-encrypted-channel-a', '1.1')['shared_secret']
        );
        $this->assertNotSame(
            'Rp+wpkNpL89qhqco1JkIG31AVXyU8PUVJBr1B2MvdoA=',
            $signature->authorizeChannel('private-encrypted-channel-b', '1.1')['shared_secret']
        );
        // The shared secret is not part of the signature: the same auth as a private channel.
        $this->assertSame(
            $signature->sign('1.1:private-encrypted-channel-a'),
            $signature->authorizeChannel('private-encrypted-channel-a', '1.1')['auth']
        );
    }

    public function test_presence_channel_data_types_the_user_id_as_a_string_as_pusher_http_php_7_does()
    {
        $answer = $this->docs()->authorizePresenceChannel('presence-foobar', '1234.1234', 10, ['name' => 'Mr. Channels']);

        $this->assertSame('{"user_id":"10","user_info":{"name":"Mr. Channels"}}', $answer['channel_data']);
        $this->assertSame($this->docs()->sign('1234.1234:presence-foobar:'.$answer['channel_data']), $answer['auth']);
        $this->assertSame('{"user_id":"10"}', $this->docs()->authorizePresenceChannel('presence-foobar', '1234.1234', 10, [])['channel_data']);
    }

    public function test_an_encrypted_channel_without_a_master_key_is_an_error()
    {
        $this->expectExceptionMessage('encryption_master_key_base64');
        $this->docs()->authorizeChannel('private-encrypted-x', '1.1');
    }

    public function test_a_master_key_that_is_not_32_bytes_is_an_error()
    {
        $this->expectExceptionMessage('32 bytes');
        $this->docs(base64_encode('short'));
    }

    /** @dataProvider badInput */
    public function test_bad_socket_ids_and_channel_names_are_refused_as_pusher_http_php_refuses_them($channel, $socketId)
    {
        $this->expectException(BadRequestHttpException::class);
        $this->docs()->authorizeChannel($channel, $socketId);
    }

    public function badInput(): array
    {
        return [
            'trailing colon socket' => ['private-x', '1.1:'],
            'leading colon socket' => ['private-x', ':1.1'],
            'newline socket' => ['private-x', "1.1\n"],
            'socket.io id' => ['private-x', 'abcDEF123_-'],
            'colon channel' => ['private-x:', '1.1'],
            'newline channel' => ["private-x\n", '1.1'],
        ];
    }
}
