import asyncio

import rayline


async def wait_and_tell(seconds):
    me = rayline.current_execution_id()
    print(f"{me}: starting, will wait {seconds} s")
    await asyncio.sleep(seconds)
    print(f"{me}: done")
    return {"waited": seconds}
