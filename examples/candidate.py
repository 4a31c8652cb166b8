"""A candidate client on the official `openai` SDK: python examples/candidate.py LINK ANSWER.wav"""

import asyncio
import base64
import json
import sys
import urllib.request
import wave

from openai import AsyncOpenAI


def redeem(link: str) -> tuple[str, dict[str, str]]:
    """What the invitation page's button does: the link's token for a session and an access token."""
    edge, _, token = link.rpartition("/i/")  # the link is <edge>/i/<token>
    request = urllib.request.Request(f"{edge}/v1/invitations/redeem", data=json.dumps({"token": token}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return edge, json.load(response)


async def interview(edge: str, redeemed: dict[str, str], answer: bytes) -> None:
    ws = edge.replace("http", "ws", 1)
    client = AsyncOpenAI(api_key=redeemed["access_token"], base_url=f"{edge}/v1", websocket_base_url=f"{ws}/v1")
    secret = await client.realtime.client_secrets.create()  # short-lived, as OpenAI's
    candidate = AsyncOpenAI(api_key=secret.value, base_url=f"{edge}/v1", websocket_base_url=f"{ws}/v1")
    to_say, chunk = bytearray(), 4800  # 100 ms of PCM16 at 24 kHz

    async with candidate.realtime.connect(call_id=redeemed["session_id"]) as conn:
        async def microphone() -> None:  # streams all the time, in real time: the answer, or silence
            while True:
                audio = bytes(to_say[:chunk]) or bytes(chunk)
                del to_say[:chunk]
                await conn.input_audio_buffer.append(audio=base64.b64encode(audio).decode())
                await asyncio.sleep(0.1)

        mic = asyncio.create_task(microphone())
        async for event in conn:
            if event.type == "interview.progress":  # our own events come through with their fields
                print(f"question {event.question_number} of {event.question_count}")
            elif event.type == "response.output_audio_transcript.done":
                print("interviewer:", event.transcript)
            elif event.type == "response.done" and event.response.status == "completed":
                to_say.extend(answer)  # answer each question with the WAV file
                print("candidate: (speaks the WAV file)")
            elif event.type == "interview.ended":
                print("interview ended:", event.reason, "- session", redeemed["session_id"])
                break
        mic.cancel()


if __name__ == "__main__":
    link, wav_path = sys.argv[1], sys.argv[2]
    with wave.open(wav_path, "rb") as wav:  # PCM16, 24 kHz, mono: `interview say TEXT -o answer.wav`
        answer = wav.readframes(wav.getnframes())
    asyncio.run(interview(*redeem(link), answer))
