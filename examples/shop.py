# A small order-processing program with a worker thread: the README's
# recording example (`pytap record -o shop.pytap -c 'python3 examples/shop.py'`).
import json
import queue
import threading

PRICES = {"apple": 0.5, "bread": 2.25, "cheese": 4.0, "dates": 3.1}


def price(item):
    return PRICES[item["name"]] * item["qty"]


def total(order):
    return round(sum(price(i) for i in order["items"]), 2)


def handle(order):
    return {"id": order["id"], "total": total(order)}


def worker(orders, done):
    while True:
        order = orders.get()
        if order is None:
            return
        done.append(handle(order))


def main():
    orders = queue.Queue()
    done = []
    t = threading.Thread(target=worker, args=(orders, done), name="worker")
    t.start()
    for n in range(200):
        names = list(PRICES)
        items = [{"name": names[(n + k) % len(names)], "qty": 1 + k} for k in range(3)]
        orders.put({"id": n, "items": items})
    orders.put(None)
    t.join()
    print(json.dumps(done[-1]))


main()
